//! `etcdctl snapshot save|status|restore`. `save` streams one member's
//! backend snapshot (the server appends a SHA-256 trailer) into
//! `<filename>.part`, syncs it and renames it into place, as clientv3's
//! `snapshot.Save` does, with the log lines etcd 3.5's etcdctl writes on
//! the way (zap's production logger: JSON, epoch timestamps). `status` and
//! `restore` are etcd 3.5's deprecated aliases of etcdutl's commands: a
//! warning, then the same work (`rsetcd::etcdutl`).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rsetcd::client::{grpc_status_string, status_text};
use rsetcd::etcdutl::printer::{self as etcdutl_printer, OutputFormat};
use rsetcd::etcdutl::snapshot::{self as etcdutl_snapshot, RestoreConfig, RevisionBump};
use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::SnapshotRequest;
use tonic::Status;

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError, EXIT_INTERRUPTED};
use crate::global::{self, Client, ClientConfig, DEADLINE_EXCEEDED};
use crate::process::errno_text;

/// The SHA-256 digest etcd appends to a snapshot.
const CHECKSUM_SIZE: u64 = 32;

pub async fn save(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args("snapshot save expects one argument"));
    }
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    // Without an explicit --command-timeout the download may take as long
    // as it takes.
    let timeout = inv
        .flags
        .changed("command-timeout")
        .then_some(config.command_timeout);
    let path = &inv.args[0];
    save_to(config, timeout, path)
        .await
        .map_err(|message| ExitError::new(EXIT_INTERRUPTED, message))?;
    println!("Snapshot saved at {path}");
    Ok(())
}

/// etcdutl's `snapshot status`, after etcd 3.5's deprecation notice. Like
/// etcd's, it reads `--write-out` and `--hex` without the `ETCDCTL_*`
/// variables (no client is configured).
pub fn status(inv: Invocation) -> CtlResult {
    eprint!("Deprecated: Use `etcdutl snapshot status` instead.\n\n");
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "snapshot status requires exactly one argument",
        ));
    }
    let format: OutputFormat = inv
        .flags
        .string("write-out")
        .parse()
        .map_err(etcdutl_error)?;
    let path = PathBuf::from(&inv.args[0]);
    let status = etcdutl_snapshot::status(&path).map_err(etcdutl_error)?;
    let text = etcdutl_printer::snapshot_status(format, &status).map_err(etcdutl_error)?;
    print!("{text}");
    if let Some(note) = etcdutl_snapshot::format_note(&path) {
        eprint!("{note}");
    }
    Ok(())
}

/// etcdutl's `snapshot restore` with etcd 3.5 etcdctl's flags: the data
/// dir defaults to `<name>.etcd`, and the revision is kept as it is (this
/// alias has no --bump-revision).
pub fn restore(inv: Invocation) -> CtlResult {
    eprint!("Deprecated: Use `etcdutl snapshot restore` instead.\n\n");
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    }
    let flags = &inv.flags;
    let optional_path = |name: &str| {
        let value = flags.string(name);
        (!value.is_empty()).then(|| PathBuf::from(value))
    };
    let config = RestoreConfig {
        snapshot_path: PathBuf::from(&inv.args[0]),
        name: flags.string("name"),
        data_dir: optional_path("data-dir"),
        wal_dir: optional_path("wal-dir"),
        peer_urls: flags.string("initial-advertise-peer-urls"),
        initial_cluster: flags.string("initial-cluster"),
        initial_cluster_token: flags.string("initial-cluster-token"),
        skip_hash_check: flags.bool("skip-hash-check"),
        revision: RevisionBump {
            bump: 0,
            mark_compacted: false,
        },
    };
    // etcdutl's logger: zap's console format on stderr.
    let _ = rsetcd::logging::init(
        tracing::Level::INFO,
        rsetcd::logging::Format::Console,
        &[rsetcd::logging::Output::Stderr],
    );
    etcdutl_snapshot::restore(&config).map_err(etcdutl_error)?;
    Ok(())
}

fn etcdutl_error(err: rsetcd::etcdutl::Error) -> ExitError {
    ExitError::new(err.exit_code(), err.to_string())
}

/// clientv3's `snapshot.Save`; the error is the text etcdctl prints.
async fn save_to(
    config: ClientConfig,
    timeout: Option<Duration>,
    path: &str,
) -> Result<(), String> {
    if config.endpoints.len() != 1 {
        return Err(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            config.endpoints.join(" ")
        ));
    }
    let endpoint = config.endpoints[0].clone();
    // clientv3.New with a dial timeout: the member must answer within
    // --dial-timeout, before any file is created (etcd 3.4's etcdctl waited
    // forever on an unreachable endpoint, leaving a .part file behind).
    let mut client = Client::unbounded(config.clone());
    let channel = dial(&mut client, config.dial_timeout).await?;
    let part_path = format!("{path}.part");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part_path)
        .map_err(|err| {
            format!(
                "could not open {part_path} (open {part_path}: {})",
                errno_text(&err)
            )
        })?;
    log(
        "info",
        None,
        "snapshot/v3_snapshot.go:68",
        "created temporary db file",
        &[("path", &part_path)],
    );
    // The partial file goes whatever happens; a saved one was renamed away.
    let result = fetch_and_keep(
        client, channel, timeout, &endpoint, &mut file, &part_path, path,
    )
    .await;
    drop(file);
    let _ = std::fs::remove_file(&part_path);
    result
}

/// A connection the member has answered on (any answer to a Status call: a
/// listener that accepts TCP but never speaks gRPC does not count), within
/// `limit`.
async fn dial(client: &mut Client, limit: Duration) -> Result<tonic::transport::Channel, String> {
    let answered = async {
        let channel = client.connection().await.map_err(|err| err.text)?;
        let request = client.stream_request(rsetcd::proto::etcdserverpb::StatusRequest {}, false);
        match MaintenanceClient::new(channel.clone())
            .status(request)
            .await
        {
            Ok(_) => Ok(channel),
            // an error status is an answer all the same: the member is there
            Err(status) if std::error::Error::source(&status).is_none() => Ok(channel),
            Err(status) => Err(status_text(&status)),
        }
    };
    tokio::time::timeout(limit, answered)
        .await
        .unwrap_or_else(|_| Err(DEADLINE_EXCEEDED.to_string()))
}

async fn fetch_and_keep(
    client: Client,
    channel: tonic::transport::Channel,
    timeout: Option<Duration>,
    endpoint: &str,
    file: &mut File,
    part_path: &str,
    path: &str,
) -> Result<(), String> {
    let started = Instant::now();
    let download = download(client, channel, endpoint, file, part_path);
    let size = match timeout {
        Some(limit) => tokio::time::timeout(limit, download)
            .await
            .unwrap_or_else(|_| Err(DEADLINE_EXCEEDED.to_string()))?,
        None => download.await?,
    };
    if size % 512 != CHECKSUM_SIZE {
        return Err(format!("sha256 checksum not found [bytes: {size}]"));
    }
    file.sync_all()
        .map_err(|err| format!("sync {part_path}: {}", errno_text(&err)))?;
    log(
        "info",
        None,
        "snapshot/v3_snapshot.go:91",
        "fetched snapshot",
        &[
            ("endpoint", endpoint),
            ("size", &gofmt::humanize_bytes(size)),
            ("took", &humanize_since(started.elapsed())),
        ],
    );
    std::fs::rename(part_path, path).map_err(|err| {
        format!(
            "could not rename {part_path} to {path} (rename {part_path} {path}: {})",
            errno_text(&err)
        )
    })?;
    log(
        "info",
        None,
        "snapshot/v3_snapshot.go:100",
        "saved",
        &[("path", path)],
    );
    Ok(())
}

/// Opens the Snapshot stream and writes every blob it carries to `file`;
/// returns the number of bytes written.
async fn download(
    client: Client,
    channel: tonic::transport::Channel,
    endpoint: &str,
    file: &mut File,
    part_path: &str,
) -> Result<u64, String> {
    // The caller bounds the whole download by --command-timeout, if set.
    log(
        "info",
        Some("client"),
        "v3/maintenance.go:211",
        "opened snapshot stream; downloading",
        &[],
    );
    log(
        "info",
        None,
        "snapshot/v3_snapshot.go:76",
        "fetching snapshot",
        &[("endpoint", endpoint)],
    );
    let request = client.stream_request(SnapshotRequest {}, false);
    let mut stream = MaintenanceClient::new(channel)
        // clientv3 accepts messages up to 2 GiB.
        .max_decoding_message_size(i32::MAX as usize)
        .snapshot(request)
        .await
        .map_err(receive_failed)?
        .into_inner();
    let mut size = 0u64;
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                file.write_all(&chunk.blob)
                    .map_err(|err| format!("write {part_path}: {}", errno_text(&err)))?;
                size += chunk.blob.len() as u64;
            }
            Ok(None) => break,
            Err(status) => return Err(receive_failed(status)),
        }
    }
    log(
        "info",
        Some("client"),
        "v3/maintenance.go:219",
        "completed snapshot read; closing",
        &[],
    );
    Ok(size)
}

/// The warning clientv3 logs when the stream breaks, and the error it
/// gives the reader.
fn receive_failed(status: Status) -> String {
    log(
        "warn",
        Some("client"),
        "v3/maintenance.go:221",
        "failed to receive from snapshot stream; closing",
        &[("error", &grpc_status_string(&status))],
    );
    status_text(&status)
}

/// One line of zap's production logger, which `snapshot save` logs with:
/// JSON on stderr, the time as seconds since the epoch.
fn log(level: &str, logger: Option<&str>, caller: &str, msg: &str, fields: &[(&str, &str)]) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut line = format!("{{\"level\":{},\"ts\":{ts}", gofmt::json_string(level));
    if let Some(name) = logger {
        line.push_str(&format!(",\"logger\":{}", gofmt::json_string(name)));
    }
    line.push_str(&format!(
        ",\"caller\":{},\"msg\":{}",
        gofmt::json_string(caller),
        gofmt::json_string(msg)
    ));
    for (key, value) in fields {
        line.push_str(&format!(
            ",{}:{}",
            gofmt::json_string(key),
            gofmt::json_string(value)
        ));
    }
    line.push('}');
    eprintln!("{line}");
}

/// go-humanize's `Time` for a moment `elapsed` ago: "now", "5 seconds
/// ago", "1 minute ago", ...
fn humanize_since(elapsed: Duration) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    const WEEK: u64 = 7 * DAY;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 12 * MONTH;
    // (below this many seconds, format, unit to count in); go-humanize's
    // magnitudes, compared on whole durations.
    const MAGNITUDES: &[(u64, &str, u64)] = &[
        (1, "now", 0),
        (2, "1 second ago", 0),
        (MINUTE, "{} seconds ago", 1),
        (2 * MINUTE, "1 minute ago", 0),
        (HOUR, "{} minutes ago", MINUTE),
        (2 * HOUR, "1 hour ago", 0),
        (DAY, "{} hours ago", HOUR),
        (2 * DAY, "1 day ago", 0),
        (WEEK, "{} days ago", DAY),
        (2 * WEEK, "1 week ago", 0),
        (MONTH, "{} weeks ago", WEEK),
        (2 * MONTH, "1 month ago", 0),
        (YEAR, "{} months ago", MONTH),
        (18 * MONTH, "1 year ago", 0),
        (2 * YEAR, "2 years ago", 0),
        (37 * YEAR, "{} years ago", YEAR),
    ];
    let nanos = elapsed.as_nanos();
    for &(below, format, unit) in MAGNITUDES {
        if nanos < u128::from(below) * 1_000_000_000 {
            if unit == 0 {
                return format.to_string();
            }
            let count = nanos / (u128::from(unit) * 1_000_000_000);
            return format.replace("{}", &count.to_string());
        }
    }
    "a long while ago".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes_like_go_humanize() {
        assert_eq!(humanize_since(Duration::from_millis(300)), "now");
        assert_eq!(humanize_since(Duration::from_millis(1500)), "1 second ago");
        assert_eq!(humanize_since(Duration::from_secs(5)), "5 seconds ago");
        assert_eq!(humanize_since(Duration::from_secs(61)), "1 minute ago");
        assert_eq!(humanize_since(Duration::from_secs(600)), "10 minutes ago");
        assert_eq!(humanize_since(Duration::from_secs(3 * 3600)), "3 hours ago");
    }
}
