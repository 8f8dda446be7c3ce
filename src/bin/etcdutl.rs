//! `etcdutl`: etcd 3.5's offline administration tool. The command line
//! (flags, defaults, exit codes) lives here; the work is in
//! `rsetcd::etcdutl`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use rsetcd::etcdutl::printer::{self, OutputFormat};
use rsetcd::etcdutl::snapshot::{self, RestoreConfig, RevisionBump};
use rsetcd::etcdutl::{backup, defrag, hashkv, Error};

#[derive(Parser)]
#[command(
    name = "etcdutl",
    about = "An administrative command line tool for etcd3."
)]
pub(crate) struct Cli {
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple"
    )]
    write_out: String,
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
        data_dir: Option<PathBuf>,
    },
    /// Manages etcd node snapshots
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Prints the KV history hash of a given file
    Hashkv {
        /// A data dir or a backend file
        #[arg(value_name = "filename")]
        args: Vec<PathBuf>,
        /// maximum revision to hash (default: latest revision)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// [legacy] offline backup of etcd directory
    Backup {
        /// Path to the etcd data dir
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Path to the etcd wal dir
        #[arg(long = "wal-dir")]
        wal_dir: Option<PathBuf>,
        /// Path to the backup dir
        #[arg(long = "backup-dir")]
        backup_dir: Option<PathBuf>,
        /// Path to the backup wal dir
        #[arg(long = "backup-wal-dir")]
        backup_wal_dir: Option<PathBuf>,
        /// Backup v3 backend data
        #[arg(long = "with-v3", action = ArgAction::Set, num_args = 0..=1,
              default_value_t = true, default_missing_value = "true")]
        with_v3: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Gets backend snapshot status of a given file
    Status {
        #[arg(value_name = "filename")]
        args: Vec<PathBuf>,
    },
    /// Restores an etcd member snapshot to an etcd directory
    Restore {
        #[arg(value_name = "filename")]
        args: Vec<PathBuf>,
        /// Path to the output data directory
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Path to the WAL directory (use --data-dir if none given)
        #[arg(long = "wal-dir")]
        wal_dir: Option<PathBuf>,
        /// Initial cluster configuration for restore bootstrap
        #[arg(long = "initial-cluster", default_value = snapshot::DEFAULT_INITIAL_CLUSTER)]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap
        #[arg(long = "initial-cluster-token", default_value = snapshot::DEFAULT_INITIAL_CLUSTER_TOKEN)]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster
        #[arg(long = "initial-advertise-peer-urls", default_value = snapshot::DEFAULT_PEER_URLS)]
        initial_advertise_peer_urls: String,
        /// Human-readable name for this member
        #[arg(long, default_value = snapshot::DEFAULT_NAME)]
        name: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory)
        #[arg(long = "skip-hash-check", action = ArgAction::Set, num_args = 0..=1,
              default_value_t = false, default_missing_value = "true")]
        skip_hash_check: bool,
        /// How much to increase the latest revision after restore (default
        /// 1000000000 with --mark-compacted; 0 restores the revision as is)
        #[arg(long = "bump-revision")]
        bump_revision: Option<u64>,
        /// Mark the latest revision after restore as the point of scheduled
        /// compaction (required if --bump-revision > 0, disallowed otherwise)
        #[arg(long = "mark-compacted", action = ArgAction::Set, num_args = 0..=1,
              default_value_t = false, default_missing_value = "true")]
        mark_compacted: bool,
    },
    /// Stores an etcd node backend snapshot to a given file
    #[command(hide = true)]
    Save {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // restored data dirs and defragmented files get etcd's private modes
    rsetcd::storage::private::restrict_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // cobra's failures (unknown flag, bad value) exit with 1.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("Error: {}", first.trim_start_matches("error: "));
            return ExitCode::from(1);
        }
    };
    // etcdutl logs its progress to stderr in zap's console format.
    let _ = rsetcd::logging::init(
        tracing::Level::INFO,
        rsetcd::logging::Format::Console,
        &[rsetcd::logging::Output::Stderr],
    );
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Version => {
            println!("etcdutl version: {}", rsetcd::ETCD_VERSION);
            let api = rsetcd::ETCD_VERSION
                .rsplit_once('.')
                .map(|(a, _)| a)
                .unwrap_or("3.5");
            println!("API version: {api}");
            Ok(())
        }
        Command::Defrag { data_dir } => {
            defrag::defrag(&data_dir.ok_or_else(|| required("data-dir"))?)
        }
        Command::Snapshot { command } => snapshot_command(command, &cli.write_out),
        Command::Hashkv { args, rev } => {
            let format: OutputFormat = cli.write_out.parse()?;
            let [path] = args.as_slice() else {
                // cobra's ExactArgs: reported by Execute, so exit 1.
                return Err(Error::Failed(anyhow::anyhow!(
                    "accepts 1 arg(s), received {}",
                    args.len()
                )));
            };
            let h = hashkv::hash_kv(path, rev)?;
            print!("{}", printer::hash_kv(format, &h)?);
            Ok(())
        }
        Command::Backup {
            data_dir,
            wal_dir,
            backup_dir,
            backup_wal_dir,
            with_v3,
        } => {
            let data_dir = data_dir.ok_or_else(|| required("data-dir"))?;
            let backup_dir = backup_dir.ok_or_else(|| required("backup-dir"))?;
            backup::backup(&backup::BackupConfig {
                data_dir,
                wal_dir,
                backup_dir,
                backup_wal_dir,
                with_v3,
            })?;
            Ok(())
        }
    }
}

fn snapshot_command(command: SnapshotCommand, write_out: &str) -> Result<(), Error> {
    match command {
        SnapshotCommand::Status { args } => {
            let [path] = args.as_slice() else {
                return Err(Error::BadArgs(
                    "snapshot status requires exactly one argument".into(),
                ));
            };
            let format: OutputFormat = write_out.parse()?;
            let status = snapshot::status(path)?;
            print!("{}", printer::snapshot_status(format, &status)?);
            if let Some(note) = snapshot::format_note(path) {
                eprint!("{note}");
            }
            Ok(())
        }
        SnapshotCommand::Restore {
            args,
            data_dir,
            wal_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            name,
            skip_hash_check,
            bump_revision,
            mark_compacted,
        } => {
            let data_dir = data_dir.ok_or_else(|| required("data-dir"))?;
            let [path] = args.as_slice() else {
                return Err(Error::BadArgs(
                    "snapshot restore requires exactly one argument".into(),
                ));
            };
            let revision = RevisionBump::from_flags(bump_revision, mark_compacted)?;
            snapshot::restore(&RestoreConfig {
                snapshot_path: path.clone(),
                name,
                data_dir: Some(data_dir),
                wal_dir,
                peer_urls: initial_advertise_peer_urls,
                initial_cluster,
                initial_cluster_token,
                skip_hash_check,
                revision,
            })?;
            Ok(())
        }
        SnapshotCommand::Save { .. } => Err(Error::BadArgs(
            "In order to download snapshot use: `etcdctl snapshot save ...`".into(),
        )),
    }
}

/// cobra's text for a flag marked required.
fn required(flag: &str) -> Error {
    Error::Failed(anyhow::anyhow!("required flag(s) \"{flag}\" not set"))
}
