//! Maintenance across members: a NOSPACE alarm raised by one member is seen
//! and enforced by all, disarming it anywhere lifts it everywhere, and every
//! member's backend hashes the same.

use crate::support;
use std::time::{Duration, Instant};

use rsetcd::proto::etcdserverpb::alarm_request::AlarmAction;
use rsetcd::proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, DefragmentRequest, HashRequest, PutRequest,
};
use support::cluster::{Cluster, Flavor};

const QUOTA: i64 = 16 << 20;
const ARGS: [&str; 3] = [
    "--heartbeat-interval=100",
    "--election-timeout=1000",
    "--quota-backend-bytes=16777216",
];

fn put(key: &str, value: Vec<u8>) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value,
        ..Default::default()
    }
}

fn alarm(action: AlarmAction, member_id: u64) -> AlarmRequest {
    AlarmRequest {
        action: action as i32,
        member_id,
        alarm: if member_id == 0 {
            AlarmType::None
        } else {
            AlarmType::Nospace
        } as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nospace_is_cluster_wide_and_hashes_agree() -> anyhow::Result<()> {
    let cluster = Cluster::start(Flavor::Ours, 3, &ARGS).await?;
    let m = &cluster.members;
    let mut kv0 = m[0].kv().await?;
    let value = vec![7u8; 1 << 20];
    let mut refused = None;
    for _ in 0..64 {
        match kv0.put(put("key", value.clone())).await {
            Ok(_) => {}
            // An election on a loaded machine ("leader changed", "no
            // leader"): a client tries again, and so does this one.
            Err(e) if e.code() == tonic::Code::Unavailable => {
                eprintln!("put: {e:?}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("16 MiB quota never reached");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(
        refused.message(),
        "etcdserver: mvcc: database space exceeded"
    );
    let raiser = m[0].status().await?.header.unwrap().member_id;

    // Every member lists the alarm (before any other member's own quota
    // check raises its own: each member checks its own backend, as etcd).
    for member in m {
        let mut mc = member.maintenance().await?;
        let listed = mc
            .alarm(alarm(AlarmAction::Get, 0))
            .await?
            .into_inner()
            .alarms;
        assert_eq!(listed.len(), 1, "{}: {listed:?}", member.name);
        assert_eq!(listed[0].member_id, raiser);
        assert_eq!(listed[0].alarm, AlarmType::Nospace as i32);
        let status = member.status().await?;
        assert_eq!(
            status.errors,
            vec![format!("memberID:{raiser} alarm:NOSPACE ")],
            "{}",
            member.name
        );
        let health = support::http::get(&member.client_url(), "/health").await?;
        assert_eq!(
            health,
            (
                503,
                r#"{"health":"false","reason":"ALARM NOSPACE"}"#.to_string()
            ),
            "{}",
            member.name
        );
        let excluded = support::http::get(&member.client_url(), "/health?exclude=NOSPACE").await?;
        assert_eq!(
            excluded,
            (200, r#"{"health":"true","reason":""}"#.to_string()),
            "{}",
            member.name
        );
    }

    // Every member refuses writes that grow the store.
    for member in m {
        let e = member
            .kv()
            .await?
            .put(put("other", b"x".to_vec()))
            .await
            .expect_err("a put under NOSPACE");
        assert_eq!(e.message(), "etcdserver: mvcc: database space exceeded");
    }

    // Compact, defrag every member, disarm everything through another
    // member (as `etcdctl alarm disarm`: list, then deactivate each).
    let rev = m[1].status().await?.header.unwrap().revision;
    m[1].kv()
        .await?
        .compact(CompactionRequest {
            revision: rev,
            physical: true,
        })
        .await?;
    // The physical compaction answers when m[1] has deleted its records;
    // the others delete theirs when they apply it, a moment later (as in
    // etcd): defragment each until its file is back under the quota, as an
    // operator would, or the next put there raises NOSPACE again.
    let deadline = Instant::now() + Duration::from_secs(30);
    for member in m {
        loop {
            member
                .maintenance()
                .await?
                .defragment(DefragmentRequest {})
                .await?;
            let size = member.status().await?.db_size;
            if size < QUOTA / 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still {size} bytes after compaction and defrag; its log:\n{}",
                member.name,
                member
                    .log()
                    .lines()
                    .filter(|l| l.contains("compact") || l.contains("defrag") || l.contains("rev"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut mc = m[2].maintenance().await?;
    let active = mc
        .alarm(alarm(AlarmAction::Get, 0))
        .await?
        .into_inner()
        .alarms;
    assert!(active.iter().any(|a| a.member_id == raiser), "{active:?}");
    for a in active {
        let disarmed = mc
            .alarm(alarm(AlarmAction::Deactivate, a.member_id))
            .await?
            .into_inner()
            .alarms;
        assert_eq!(disarmed, vec![a]);
    }
    for member in m {
        member
            .kv()
            .await?
            .put(put(&format!("after/{}", member.name), b"ok".to_vec()))
            .await?;
    }

    // Same data, same hash, whichever member answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut hashes = Vec::new();
        for member in m {
            let h = member
                .maintenance()
                .await?
                .hash(HashRequest {})
                .await?
                .into_inner();
            hashes.push((h.header.unwrap().revision, h.hash));
        }
        if hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members' hashes differ: {hashes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
