//! Differential tests of our etcdctl's maintenance commands (`snapshot
//! save|status|restore`, `defrag`, `alarm list|disarm`, `check perf`,
//! `make-mirror`) against Debian's etcdctl 3.4, both talking to the same
//! etcd 3.4 server; then the same checks against our server, for each part
//! whose RPC our server serves (a part it answers Unimplemented for is
//! skipped, saying so).
//!
//! Client log lines (JSON with timestamps and pointers) are compared by
//! their messages only. Where etcd 3.5 (our target) differs from 3.4, ours
//! is checked against 3.5's text.

use crate::support::common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{reference_available, ServerOptions, TestServer, REFERENCE_ETCDCTL};
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{AlarmRequest, DefragmentRequest, SnapshotRequest};

use crate::support::common::OUR_ETCDCTL;

/// How long one etcdctl run may take before it is killed (check perf
/// runs for 60 s).
const RUN_LIMIT: Duration = Duration::from_secs(100);

// ---- running etcdctl ----

/// What one etcdctl run printed and how it ended.
#[derive(Debug, Clone)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

impl Outcome {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The `msg` of each JSON log line on stderr, in order.
    fn log_messages(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| v.get("msg").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Stderr without its JSON log lines.
    fn plain_stderr(&self) -> String {
        self.stderr
            .lines()
            .filter(|line| !line.starts_with("{\"level\""))
            .map(|line| format!("{line}\n"))
            .collect()
    }
}

/// Runs `binary` with `ETCDCTL_API=3` and nothing else from the
/// environment.
fn run(binary: &str, args: &[&str]) -> Outcome {
    let run = crate::support::etcdctl::run_within(binary, args, "", [], RUN_LIMIT);
    Outcome {
        stderr: run.stderr_text(),
        stdout: run.stdout,
        code: run.code,
    }
}

fn spawn(binary: &str, args: &[&str]) -> Child {
    Command::new(binary)
        .args(args)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// Runs the same command through both etcdctls.
fn both(endpoints: &str, args: &[&str]) -> (Outcome, Outcome) {
    let mut full = vec!["--endpoints", endpoints];
    full.extend_from_slice(args);
    (run(REFERENCE_ETCDCTL, &full), run(OUR_ETCDCTL, &full))
}

/// Both etcdctls printed the same (log lines by message) and exited alike.
fn assert_same(what: &str, reference: &Outcome, ours: &Outcome) {
    assert_eq!(
        reference.stdout_text(),
        ours.stdout_text(),
        "{what}: stdout differs"
    );
    assert_eq!(
        reference.plain_stderr(),
        ours.plain_stderr(),
        "{what}: stderr differs\nreference: {}\nours: {}",
        reference.stderr,
        ours.stderr
    );
    assert_eq!(
        reference.log_messages().len(),
        ours.log_messages().len(),
        "{what}: log lines differ\nreference: {}\nours: {}",
        reference.stderr,
        ours.stderr
    );
    assert_eq!(reference.code, ours.code, "{what}: exit code differs");
}

/// Puts through our etcdctl (the KV path is tested elsewhere).
fn put(endpoint: &str, key: &str, value: &str) {
    let out = run(OUR_ETCDCTL, &["--endpoints", endpoint, "put", key, value]);
    assert_eq!(out.code, Some(0), "put {key}: {}", out.stderr);
}

fn get_prefix(endpoint: &str, prefix: &str) -> String {
    let out = run(
        OUR_ETCDCTL,
        &["--endpoints", endpoint, "get", "--prefix", prefix],
    );
    assert_eq!(out.code, Some(0), "get {prefix}: {}", out.stderr);
    out.stdout_text()
}

// ---- servers ----

fn start_reference(extra: &[&str]) -> TestServer {
    let options = ServerOptions {
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    };
    TestServer::start_reference(&options).expect("start etcd 3.4")
}

fn start_ours(extra: &[&str]) -> TestServer {
    let options = ServerOptions {
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    };
    TestServer::start_ours(&options).expect("start our etcd")
}

/// The Maintenance RPCs these tests need, by name.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    Snapshot,
    Defragment,
    Alarm,
}

/// Whether our server serves `rpc` (anything but Unimplemented); prints
/// which part is skipped when it does not.
fn ours_serves(server: &TestServer, rpc: Rpc, part: &str) -> bool {
    let url = server.client_url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async move {
        let mut client = MaintenanceClient::connect(url).await.expect("connect");
        let result = match rpc {
            Rpc::Snapshot => client.snapshot(SnapshotRequest {}).await.map(|_| ()),
            Rpc::Defragment => client.defragment(DefragmentRequest {}).await.map(|_| ()),
            Rpc::Alarm => client.alarm(AlarmRequest::default()).await.map(|_| ()),
        };
        result.err().map(|status| status.code())
    });
    if code == Some(tonic::Code::Unimplemented) {
        println!("SKIPPED against our server: {part} ({rpc:?} is Unimplemented)");
        return false;
    }
    true
}

// ---- snapshot ----

/// `snapshot save` into `dir/name` with `binary`.
fn save(binary: &str, endpoint: &str, dir: &Path, name: &str) -> (Outcome, u64) {
    let path = dir.join(name);
    let path_text = path.display().to_string();
    let out = run(
        binary,
        &["--endpoints", endpoint, "snapshot", "save", &path_text],
    );
    assert!(
        !dir.join(format!("{name}.part")).exists(),
        "{binary} left the .part file"
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    (out, size)
}

const SAVE_LOG: [&str; 6] = [
    "created temporary db file",
    "opened snapshot stream; downloading",
    "fetching snapshot",
    "completed snapshot read; closing",
    "fetched snapshot",
    "saved",
];

fn check_snapshot_save(endpoint: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (reference, reference_size) = save(REFERENCE_ETCDCTL, endpoint, dir.path(), "ref.db");
    let (ours, our_size) = save(OUR_ETCDCTL, endpoint, dir.path(), "ours.db");
    let saved = |name: &str| format!("Snapshot saved at {}\n", dir.path().join(name).display());
    assert_eq!(
        reference.stdout_text(),
        saved("ref.db"),
        "{}",
        reference.stderr
    );
    assert_eq!(ours.stdout_text(), saved("ours.db"), "{}", ours.stderr);
    assert_eq!(ours.code, Some(0));
    assert_eq!(ours.log_messages(), SAVE_LOG, "{}", ours.stderr);
    assert_eq!(reference.log_messages(), SAVE_LOG);
    // Nothing was written in between: the same backend, the same size.
    assert!(our_size > 0);
    assert_eq!(our_size, reference_size, "snapshot sizes differ");
    assert_eq!(our_size % 512, 32, "the SHA-256 trailer");

    // etcd 3.5's log lines: the client's are named "client", the times
    // are epoch seconds, the size is humanized.
    let fetched: Value = ours
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["msg"] == "fetched snapshot")
        .expect("fetched snapshot line");
    assert!(fetched["ts"].is_f64(), "{fetched}");
    assert_eq!(fetched["endpoint"], endpoint);
    assert_eq!(
        fetched["size"],
        rsetcd::gofmt::humanize_bytes(our_size).as_str()
    );
    assert_eq!(fetched["took"], "now");

    let two = format!("{endpoint},{endpoint}");
    let args_two = ["snapshot", "save", "x.db"];
    let (reference, ours) = both(&two, &args_two);
    assert_same("save to two endpoints", &reference, &ours);
    assert_eq!(ours.code, Some(5));
    let (reference, ours) = both(endpoint, &["snapshot", "save"]);
    assert_same("save without a file", &reference, &ours);
    let (reference, ours) = both(endpoint, &["snapshot", "save", "/nonexistent/dir/x.db"]);
    assert_same("save into a missing dir", &reference, &ours);
    assert_eq!(
        ours.plain_stderr(),
        "Error: could not open /nonexistent/dir/x.db.part (open /nonexistent/dir/x.db.part: no such file or directory)\n"
    );
}

#[test]
fn snapshot_save_matches_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let server = start_reference(&[]);
    let endpoint = server.endpoint();
    for i in 0..20 {
        put(&endpoint, &format!("/snap/k{i}"), &"v".repeat(100));
    }
    check_snapshot_save(&endpoint);

    let ours = start_ours(&[]);
    if ours_serves(&ours, Rpc::Snapshot, "snapshot save") {
        let endpoint = ours.endpoint();
        for i in 0..20 {
            put(&endpoint, &format!("/snap/k{i}"), &"v".repeat(100));
        }
        check_snapshot_save(&endpoint);
        check_snapshot_status_and_restore(&endpoint);
    }
}

/// `snapshot status` and `restore` on a snapshot of our server (etcd 3.4
/// cannot read our backend files): etcd 3.5's deprecation notice, then
/// etcdutl's output.
fn check_snapshot_status_and_restore(endpoint: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (saved, _) = save(OUR_ETCDCTL, endpoint, dir.path(), "s.db");
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    let file = dir.path().join("s.db").display().to_string();

    let status = run(OUR_ETCDCTL, &["snapshot", "status", &file, "-w", "json"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert_eq!(
        status.stderr,
        "Deprecated: Use `etcdutl snapshot status` instead.\n\n"
    );
    let json: Value = serde_json::from_slice(&status.stdout).expect("status json");
    // 20 puts on a fresh server: revision 21.
    assert_eq!(json["revision"], 21, "{json}");
    let simple = run(OUR_ETCDCTL, &["snapshot", "status", &file]);
    let fields: Vec<&str> = std::str::from_utf8(&simple.stdout)
        .unwrap_or_default()
        .trim_end()
        .split(", ")
        .collect();
    assert_eq!(fields.len(), 4, "{}", simple.stdout_text());
    assert_eq!(fields[1], "21");
    let none = run(OUR_ETCDCTL, &["snapshot", "status"]);
    assert_eq!(none.code, Some(128));
    assert!(none
        .stderr
        .ends_with("Error: snapshot status requires exactly one argument\n"));

    let data_dir = dir.path().join("restored").display().to_string();
    let restore = run(
        OUR_ETCDCTL,
        &["snapshot", "restore", &file, "--data-dir", &data_dir],
    );
    assert_eq!(restore.code, Some(0), "{}", restore.stderr);
    assert!(restore
        .stderr
        .starts_with("Deprecated: Use `etcdutl snapshot restore` instead.\n\n"));
    assert!(
        restore.stderr.contains("restored snapshot"),
        "{}",
        restore.stderr
    );
    assert!(Path::new(&data_dir).join("member/snap/db").is_file());
    let again = run(
        OUR_ETCDCTL,
        &["snapshot", "restore", &file, "--data-dir", &data_dir],
    );
    assert_eq!(again.code, Some(1), "a second restore into the same dir");
}

// ---- defrag ----

fn check_defrag(endpoint: &str) {
    let (reference, ours) = both(endpoint, &["defrag"]);
    assert_same("defrag", &reference, &ours);
    assert_eq!(
        ours.stdout_text(),
        format!("Finished defragmenting etcd member[{endpoint}]\n")
    );
    let (reference, ours) = both(endpoint, &["defrag", "--cluster"]);
    assert_same("defrag --cluster", &reference, &ours);
    // An endpoint nobody listens on fails; the others are still done.
    let dead = format!("127.0.0.1:{}", common::free_port().expect("port"));
    let list = format!("{endpoint},{dead}");
    let (reference, ours) = both(&list, &["--command-timeout=1s", "defrag"]);
    assert_same("defrag with a dead endpoint", &reference, &ours);
    assert_eq!(ours.code, Some(1));
    assert_eq!(
        ours.plain_stderr(),
        format!("Failed to defragment etcd member[{dead}] (context deadline exceeded)\n")
    );
}

#[test]
fn defrag_matches_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let server = start_reference(&[]);
    check_defrag(&server.endpoint());
    let ours = start_ours(&[]);
    if ours_serves(&ours, Rpc::Defragment, "defrag") {
        check_defrag(&ours.endpoint());
    }
}

#[test]
fn defrag_data_dir_of_a_stopped_member() {
    let server = start_ours(&[]);
    put(&server.endpoint(), "k", "v");
    let data_dir = server.dir.path().join("data").display().to_string();
    let warning =
        "Use `etcdutl defrag` instead. The --data-dir is going to be decomissioned in v3.6.\n\n";
    // A running member holds its data dir's lock.
    let busy = run(OUR_ETCDCTL, &["defrag", "--data-dir", &data_dir]);
    assert_eq!(busy.code, Some(1));
    assert!(
        busy.stderr.starts_with(&format!("{warning}Error: ")),
        "{}",
        busy.stderr
    );
    stop(&server);
    let out = run(OUR_ETCDCTL, &["defrag", "--data-dir", &data_dir]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, warning);
    assert_eq!(out.stdout_text(), "");
}

/// Stops the server (SIGTERM, by PID) and waits until it has exited, so
/// its data dir is free while the `TestServer` still holds it.
fn stop(server: &TestServer) {
    let pid = nix::unistd::Pid::from_raw(server.pid as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A child that exited stays a zombie until reaped: state Z.
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", server.pid)).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server {} did not stop",
            server.pid
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- alarms ----

fn check_alarms(endpoint: &str) {
    // The quota is far below the empty backend: the first put raises
    // NOSPACE.
    let out = run(OUR_ETCDCTL, &["--endpoints", endpoint, "put", "k", "v"]);
    assert_eq!(out.code, Some(1));
    assert!(out
        .stderr
        .contains("Error: etcdserver: mvcc: database space exceeded"));
    for format in ["simple", "json", "protobuf", "table"] {
        let (reference, ours) = both(endpoint, &["alarm", "list", "-w", format]);
        assert_same(&format!("alarm list -w {format}"), &reference, &ours);
    }
    let (reference, ours) = both(endpoint, &["alarm", "list"]);
    let line = ours.stdout_text();
    assert!(
        line.starts_with("memberID:") && line.ends_with(" alarm:NOSPACE \n"),
        "{line:?}"
    );
    assert_same("alarm list", &reference, &ours);
    let (reference, ours) = both(endpoint, &["alarm", "list", "extra"]);
    assert_same("alarm list with an argument", &reference, &ours);

    // Ours disarms (printing what it disarmed), then both see none.
    let disarm = run(
        OUR_ETCDCTL,
        &["--endpoints", endpoint, "alarm", "disarm", "-w", "json"],
    );
    assert_eq!(disarm.code, Some(0), "{}", disarm.stderr);
    let json: Value = serde_json::from_slice(&disarm.stdout).expect("disarm json");
    assert!(json.get("header").is_none(), "{json}");
    assert_eq!(json["alarms"][0]["alarm"], 1);
    let (reference, ours) = both(endpoint, &["alarm", "list"]);
    assert_same("alarm list after disarm", &reference, &ours);
    assert_eq!(ours.stdout_text(), "");
    let (reference, ours) = both(endpoint, &["alarm", "disarm"]);
    assert_same("alarm disarm with none raised", &reference, &ours);
}

#[test]
fn alarm_list_and_disarm_match_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let server = start_reference(&["--quota-backend-bytes=10000"]);
    check_alarms(&server.endpoint());
    let ours = start_ours(&["--quota-backend-bytes=10000"]);
    if ours_serves(&ours, Rpc::Alarm, "alarm list/disarm") {
        check_alarms(&ours.endpoint());
    }
}

// ---- make-mirror ----

/// A running `make-mirror`: its stdout lines arrive on `lines`.
struct Mirror {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Mirror {
    fn start(binary: &str, source: &str, args: &[&str]) -> Mirror {
        let mut full = vec!["--endpoints", source, "make-mirror"];
        full.extend_from_slice(args);
        let mut child = spawn(binary, &full);
        let (send, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Mirror { child, lines }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `dest` holds exactly `expected` under `prefix`.
fn wait_for_keys(dest: &str, prefix: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = get_prefix(dest, prefix);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} never became {expected:?}; last {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Mirrors `/src/` of `source` to `/dst/` (ours) and `/ref/` (etcd 3.4's
/// etcdctl, when `with_reference`) of `dest`: the existing keys, then
/// puts, deletes and a multi-key txn as they happen. Ours must print the
/// count of mirrored keys after 30 s.
fn check_make_mirror(source: &str, dest: &str, with_reference: bool) {
    put(source, "/src/a", "1");
    put(source, "/src/b", "2");
    put(source, "/other/x", "not mirrored");
    let ours = Mirror::start(
        OUR_ETCDCTL,
        source,
        &["--prefix", "/src/", "--dest-prefix", "/dst/", dest],
    );
    let reference = with_reference.then(|| {
        Mirror::start(
            REFERENCE_ETCDCTL,
            source,
            &["--prefix", "/src/", "--dest-prefix", "/ref/", dest],
        )
    });
    let started = Instant::now();
    wait_for_keys(dest, "/dst/", "/dst/a\n1\n/dst/b\n2\n");

    put(source, "/src/c", "3");
    put(source, "/src/a", "1b");
    let del = run(OUR_ETCDCTL, &["--endpoints", source, "del", "/src/b"]);
    assert_eq!(del.code, Some(0));
    let txn = run_with_stdin(
        &["--endpoints", source, "txn"],
        "\nput /src/d 4\nput /src/e 5\ndel /src/c\n\n\n",
    );
    assert_eq!(txn.code, Some(0), "{}", txn.stderr);
    let expected = "/dst/a\n1b\n/dst/d\n4\n/dst/e\n5\n";
    wait_for_keys(dest, "/dst/", expected);
    // The txn's puts reached the destination in one revision.
    let d = run(
        OUR_ETCDCTL,
        &["--endpoints", dest, "get", "/dst/d", "-w", "json"],
    );
    let e = run(
        OUR_ETCDCTL,
        &["--endpoints", dest, "get", "/dst/e", "-w", "json"],
    );
    let revision = |out: &Outcome| {
        serde_json::from_slice::<Value>(&out.stdout).expect("json")["kvs"][0]["mod_revision"]
            .clone()
    };
    assert_eq!(revision(&d), revision(&e));
    assert_eq!(get_prefix(dest, "/other/"), "");
    if reference.is_some() {
        wait_for_keys(dest, "/ref/", &expected.replace("/dst/", "/ref/"));
    }

    // 2 keys copied, then 2 puts, a delete and the txn's 3 events.
    let first = ours
        .lines
        .recv_timeout(Duration::from_secs(35).saturating_sub(started.elapsed()))
        .expect("make-mirror prints its count after 30 s");
    assert_eq!(first, "8");
}

fn run_with_stdin(args: &[&str], input: &str) -> Outcome {
    use std::io::Write as _;
    let mut child = Command::new(OUR_ETCDCTL)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("etcdctl txn");
    Outcome {
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

#[test]
fn make_mirror_copies_and_follows_like_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let source = start_reference(&[]);
    let dest = start_reference(&[]);
    let (s, d) = (source.endpoint(), dest.endpoint());

    let (reference, ours) = both(&s, &["make-mirror"]);
    assert_same("make-mirror without a destination", &reference, &ours);
    let (reference, ours) = both(
        &s,
        &["make-mirror", "--dest-prefix", "a", "--no-dest-prefix", &d],
    );
    assert_same("make-mirror with both prefixes", &reference, &ours);
    assert_eq!(ours.code, Some(128));
    // The destination's TLS files are loaded before anything is dialed.
    let (reference, ours) = both(
        &s,
        &["make-mirror", "--dest-cacert", "/nonexistent/ca.pem", &d],
    );
    assert_same(
        "make-mirror with a missing --dest-cacert",
        &reference,
        &ours,
    );
    assert_eq!(ours.code, Some(128));

    // Reference servers and ours at once: the 30 s wait is shared.
    let ours_source = start_ours(&[]);
    let ours_dest = start_ours(&[]);
    let (os, od) = (ours_source.endpoint(), ours_dest.endpoint());
    let against_ours = std::thread::spawn(move || check_make_mirror(&os, &od, false));
    check_make_mirror(&s, &d, true);
    against_ours
        .join()
        .expect("make-mirror against our servers");
}

// ---- check perf ----

/// The lines `check perf` prints after its progress bar, checked against
/// etcd's criteria: the verdict must follow from the numbers reported.
/// etcd prints them without waiting for the bar (which may not have drawn
/// its last line yet); ours waits, so `full_bar` asks for that last line.
fn check_perf_report(who: &str, out: &Outcome, full_bar: bool) {
    let text = out.stdout_text();
    let start = [
        "FAIL: too many errors",
        "PASS: Throughput",
        "FAIL: Throughput",
    ]
    .iter()
    .filter_map(|head| text.find(head))
    .min()
    .unwrap_or_else(|| panic!("{who}: no report in {text:?}"));
    let (progress, report) = text.split_at(start);
    if full_bar {
        let last = progress.rsplit('\r').next().unwrap_or_default();
        assert!(
            last.starts_with(" 60 / 60  100.00% 1m0s\n"),
            "{who}: final bar in {text:?}"
        );
    }
    let lines: Vec<&str> = report.lines().collect();
    let mut ok = true;
    let mut at = 0;
    if lines.first() == Some(&"FAIL: too many errors") {
        ok = false;
        at = 1;
        while lines[at].starts_with("FAIL: ERROR(") {
            at += 1;
        }
    }
    let number = |line: &str, prefix: &str, suffix: &str| -> f64 {
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{who}: unexpected line {line:?} in {report:?}"))
    };
    let throughput = lines[at];
    if throughput.starts_with("PASS") {
        assert!(number(throughput, "PASS: Throughput is ", " writes/s") > 135.0);
    } else {
        assert!(number(throughput, "FAIL: Throughput too low: ", " writes/s") <= 136.0);
        ok = false;
    }
    let slowest = lines[at + 1];
    if slowest.starts_with("PASS") {
        assert!(number(slowest, "PASS: Slowest request took ", "s") <= 0.5);
    } else {
        assert!(number(slowest, "Slowest request took too long: ", "s") > 0.5);
        ok = false;
    }
    let stddev = lines[at + 2];
    if stddev.starts_with("PASS") {
        assert!(number(stddev, "PASS: Stddev is ", "s") <= 0.1);
    } else {
        assert!(number(stddev, "Stddev too high: ", "s") > 0.1);
        ok = false;
    }
    let verdict = if ok { "PASS" } else { "FAIL" };
    assert_eq!(lines[at + 3..], [verdict], "{who}: {report:?}");
    assert_eq!(
        out.code,
        Some(if ok { 0 } else { 1 }),
        "{who}: {}",
        out.stderr
    );
}

/// Three 60 s checks at once (this test's whole cost): both etcdctls
/// against etcd 3.4 (each on its own prefix) and ours against our server.
#[test]
fn check_perf_load_s_reports_like_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let server = start_reference(&[]);
    let ours_server = start_ours(&[]);
    let endpoint = server.endpoint();

    let (reference, ours) = both(&endpoint, &["check", "perf", "--load", "huge"]);
    assert_same("check perf --load huge", &reference, &ours);
    assert_eq!(ours.code, Some(4));
    put(&endpoint, "/busy/k", "v");
    let busy = run(
        OUR_ETCDCTL,
        &[
            "--endpoints",
            &endpoint,
            "check",
            "perf",
            "--prefix",
            "/busy/",
        ],
    );
    // etcd 3.5 quotes the suggested command (3.4 does not).
    assert_eq!(
        busy.stderr,
        "Error: prefix \"/busy/\" has keys. Delete with 'etcdctl del --prefix /busy/' first\n"
    );
    assert_eq!(busy.code, Some(3));

    // Only ours compact (one compaction per server, no race to compact
    // below another's revision).
    let runs: Vec<_> = [
        (REFERENCE_ETCDCTL, endpoint.clone(), "/perf-ref/", false),
        (OUR_ETCDCTL, endpoint.clone(), "/perf-ours/", true),
        (OUR_ETCDCTL, ours_server.endpoint(), "/perf-ours/", true),
    ]
    .into_iter()
    .map(|(binary, endpoint, prefix, compact)| {
        std::thread::spawn(move || {
            let mut args = vec![
                "--endpoints",
                &endpoint,
                "check",
                "perf",
                "--load",
                "s",
                "--prefix",
                prefix,
            ];
            if compact {
                args.push("--auto-compact");
            }
            run(binary, &args)
        })
    })
    .collect();
    let outcomes: Vec<Outcome> = runs
        .into_iter()
        .map(|h| h.join().expect("check perf"))
        .collect();
    check_perf_report("etcdctl 3.4 against etcd 3.4", &outcomes[0], false);
    check_perf_report("ours against etcd 3.4", &outcomes[1], true);
    check_perf_report("ours against ours", &outcomes[2], true);
    for (who, out) in [
        ("against etcd 3.4", &outcomes[1]),
        ("against ours", &outcomes[2]),
    ] {
        let text = out.stdout_text();
        assert!(
            text.contains("Compacting with revision ")
                && text.contains("\nCompacted with revision "),
            "{who}: {text:?}"
        );
    }
    // The checks' keys are gone.
    assert_eq!(get_prefix(&endpoint, "/perf-"), "");
    assert_eq!(get_prefix(&ours_server.endpoint(), "/perf-"), "");
}

// ---- help ----

#[test]
fn help_of_maintenance_commands_matches_etcdctl_34() {
    if !reference_available() {
        return;
    }
    for command in [
        "alarm",
        "alarm list",
        "alarm disarm",
        "defrag",
        "check",
        "check perf",
        "check datascale",
        "snapshot save",
    ] {
        let args: Vec<&str> = command.split(' ').chain(["--help"]).collect();
        let reference = run(REFERENCE_ETCDCTL, &args);
        let ours = run(OUR_ETCDCTL, &args);
        // The groups print their API version: 3.4 there, 3.5 here.
        let expected = reference.stdout_text().replace("\n\t3.4\n", "\n\t3.5\n");
        assert_eq!(ours.stdout_text(), expected, "{command} --help");
    }
}

// ---- check datascale ----

/// `check datascale --load s` prints the workload, a bar that ends at
/// 10000, and the memory the server grew by; the keys are gone after.
fn check_datascale_report(who: &str, out: &Outcome) {
    let text = out.stdout_text();
    assert_eq!(out.code, Some(0), "{who}: {text:?} {}", out.stderr);
    let (first, rest) = text.split_once('\n').unwrap_or_default();
    assert_eq!(
        first,
        "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients].",
        "{who}"
    );
    let last_bar = rest.rsplit('\r').next().unwrap_or_default();
    let (bar, report) = last_bar.split_once('\n').unwrap_or_default();
    assert!(
        bar.starts_with(" 10000 / 10000  100.00% "),
        "{who}: {bar:?}"
    );
    let megabytes = report
        .strip_prefix("PASS: Approximate system memory used : ")
        .and_then(|r| r.strip_suffix(" MB.\n"))
        .unwrap_or_else(|| panic!("{who}: {report:?}"));
    let (_, decimals) = megabytes.split_once('.').unwrap_or_default();
    assert_eq!(decimals.len(), 2, "{who}: {megabytes}");
}

#[test]
fn check_datascale_reports_like_etcdctl_34() {
    if !reference_available() {
        return;
    }
    let server = start_reference(&[]);
    let ours_server = start_ours(&[]);
    let endpoint = server.endpoint();
    let (reference, ours) = both(&endpoint, &["check", "datascale", "--load", "x"]);
    assert_same("check datascale --load x", &reference, &ours);

    let reference = run(
        REFERENCE_ETCDCTL,
        &["--endpoints", &endpoint, "check", "datascale"],
    );
    check_datascale_report("etcdctl 3.4 against etcd 3.4", &reference);
    let ours = run(
        OUR_ETCDCTL,
        &["--endpoints", &endpoint, "check", "datascale"],
    );
    check_datascale_report("ours against etcd 3.4", &ours);
    assert_eq!(get_prefix(&endpoint, "/etcdctl-check-datascale/"), "");
    // Against our server only the refusal: 10000 puts from a debug build
    // take long, and the report is the client's, checked above.
    put(&ours_server.endpoint(), "/etcdctl-check-datascale/k", "v");
    let busy = run(
        OUR_ETCDCTL,
        &["--endpoints", &ours_server.endpoint(), "check", "datascale"],
    );
    assert_eq!(
        busy.stderr,
        "Error: prefix \"/etcdctl-check-datascale/\" has keys. Delete with etcdctl del --prefix /etcdctl-check-datascale/ first\n"
    );
    assert_eq!(busy.code, Some(3));
}

/// `snapshot save` to a member that cannot be reached — nothing listens,
/// or a listener accepts TCP but never speaks gRPC — fails within
/// --dial-timeout with "context deadline exceeded" (clientv3's blocking
/// dial; etcd 3.4's etcdctl waits forever here) and leaves no file, not
/// even the .part.
#[test]
fn snapshot_save_to_an_unreachable_member_fails_within_the_dial_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_endpoint = silent.local_addr().expect("addr").to_string();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for endpoint in [silent_endpoint, closed] {
        let path = dir.path().join("snap.db");
        let out = run(
            OUR_ETCDCTL,
            &[
                &format!("--endpoints={endpoint}"),
                "--dial-timeout=1s",
                "snapshot",
                "save",
                path.to_str().expect("utf-8 path"),
            ],
        );
        assert_eq!(out.code, Some(5), "{endpoint}: {}", out.stderr);
        assert!(
            out.plain_stderr()
                .contains("Error: context deadline exceeded"),
            "{endpoint}: {}",
            out.stderr
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
        assert!(left.is_empty(), "{endpoint}: files left behind: {left:?}");
    }
}
