//! A full disk: a member whose data dir is a small filesystem (a tmpfs the
//! test mounts, so root is needed; without it the test says so and skips)
//! is written to until the disk is full. The member stops with a clear
//! error or refuses writes; nothing it acknowledged is lost; once space is
//! freed it restarts and serves every acknowledged write.

use crate::support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use support::kv::{Flavor, Server};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    // the data dir is the mount itself: the server's log stays outside it
    let data_dir = tmp.path().join("data");
    let fs = match Tmpfs::mount(&data_dir, "150m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIP: cannot mount a small tmpfs for the data dir ({why}); needs root");
            return;
        }
    };
    let mut server = Server::start(Flavor::Ours, &data_dir, &[]).await.unwrap();
    let mut kv = server.kv().await.unwrap();
    let value = |i: usize| format!("{i:08}").repeat(32 * 1024).into_bytes(); // 256 KiB
    let mut acknowledged = Vec::new();
    let mut refused = None;
    // 150 MiB cannot hold 2,000 writes of 256 KiB: the disk fills first
    for i in 0..2000 {
        let put = PutRequest {
            key: format!("full/{i:05}").into_bytes(),
            value: value(i),
            ..Default::default()
        };
        match tokio::time::timeout(Duration::from_secs(20), kv.put(put)).await {
            Ok(Ok(_)) => acknowledged.push(i),
            other => {
                refused = Some(format!("{other:?}"));
                break;
            }
        }
    }
    let refused = refused.expect("2,000 writes of 256 KiB fit in 150 MiB?");
    assert!(
        acknowledged.len() > 10,
        "only {} writes before {refused}",
        acknowledged.len()
    );
    // the member stopped, or it refuses writes; either way it says why
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = !server.is_running();
    let log = server.log();
    eprintln!(
        "{} writes acknowledged; then {refused}; the member {}",
        acknowledged.len(),
        if stopped { "stopped" } else { "runs on" }
    );
    assert!(
        log.contains("No space left on device") || log.contains("database space exceeded"),
        "no clear reason in the log (stopped: {stopped}); the refusal was {refused}:\n{}",
        server.log_tail()
    );
    server.kill();

    // space freed: every acknowledged write is there
    fs.resize("1g");
    server.restart().await.unwrap();
    let mut kv = server.kv().await.unwrap();
    for &i in &acknowledged {
        let got = kv
            .range(RangeRequest {
                key: format!("full/{i:05}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.kvs.len(), 1, "acknowledged write {i} is gone");
        assert!(
            got.kvs[0].value == value(i),
            "acknowledged write {i} changed"
        );
    }
    // and it takes writes again
    kv.put(PutRequest {
        key: b"after".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    server.terminate(Duration::from_secs(20)).await.unwrap();
}
