//! `etcdutl`: offline operations on a data dir (etcd's etcdutl). Today:
//! `version` and `defrag --data-dir`; snapshot commands come with the
//! maintenance work.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "etcdutl",
    about = "An administrative command line tool for etcd3."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the version of etcdutl
    Version,
    /// Defragments the storage of the etcd
    Defrag {
        /// Required. Defragments a data directory not in use by etcd.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("etcdutl version: {}", rsetcd::ETCD_VERSION);
            let api = rsetcd::ETCD_VERSION
                .rsplit_once('.')
                .map(|(a, _)| a)
                .unwrap_or("3.5");
            println!("API version: {api}");
            Ok(())
        }
        Command::Defrag { data_dir } => defrag(&data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Rewrites the backend with LMDB's compacting copy and swaps it in, giving
/// free pages back to the filesystem.
fn defrag(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join("member").join("snap").join("db");
    if !db.exists() {
        anyhow::bail!("cannot open database at {}", db.display());
    }
    // The data dir lock keeps a running etcd out of our way (and us out of its).
    let _dir = rsetcd::storage::DataDir::open(data_dir, None)?;
    let tmp = db.with_file_name("db.defrag");
    let _ = std::fs::remove_file(&tmp);
    {
        let backend = rsetcd::storage::backend::Backend::open(
            &db,
            rsetcd::storage::backend::DEFAULT_MAP_SIZE,
        )
        .with_context(|| format!("cannot open database at {}", db.display()))?;
        backend
            .env
            .copy_to_path(&tmp, heed::CompactionOption::Enabled)
            .with_context(|| format!("copy {} to {}", db.display(), tmp.display()))?
            .sync_all()
            .context("sync defragmented copy")?;
    }
    std::fs::rename(&tmp, &db).with_context(|| format!("replace {}", db.display()))?;
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("sync {}", dir.display()))?;
    }
    Ok(())
}
