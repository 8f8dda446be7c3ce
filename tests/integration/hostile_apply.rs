//! Apply never dies for what a request carries (issue 13, part 1).
//!
//! A user or role name longer than the backend's keys allow used to make
//! every member fail the LMDB put while applying the entry, call fatal, and
//! fail again on every restart as the WAL replayed it: one unauthenticated
//! request took a cluster down for good. Now the API refuses such names,
//! and a log that already holds such an entry (or an entry that does not
//! decode at all) replays: every member answers it with an error and moves
//! on to the next entry.

use crate::support;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType};
use rsetcd::proto::authpb::UserAddOptions;
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::{
    AuthRoleAddRequest, AuthUserAddRequest, AuthUserListRequest, PutRequest, RangeRequest,
};
use rsetcd::proto::internal::{
    internal_raft_request::Request, InternalRaftRequest, InternalUserAddRequest, RequestHeader,
};
use rsetcd::storage::wal::Wal;
use support::kv::{is_clean_sigterm_exit, Flavor, Server};
use tonic::Code;

const STOP_TIMEOUT: Duration = Duration::from_secs(20);

async fn stop(server: &mut Server) -> anyhow::Result<()> {
    let status = server.terminate(STOP_TIMEOUT).await?;
    ensure!(
        is_clean_sigterm_exit(status),
        "etcd did not stop cleanly: {status:?}\n{}",
        server.log_tail()
    );
    Ok(())
}

async fn users(server: &Server) -> anyhow::Result<Vec<String>> {
    let mut auth = AuthClient::connect(server.client_url()).await?;
    Ok(auth
        .user_list(AuthUserListRequest::default())
        .await?
        .into_inner()
        .users)
}

async fn get(server: &Server, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let mut kv = server.kv().await?;
    let resp = kv
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
}

#[tokio::test]
async fn names_the_backend_cannot_hold_are_refused_before_they_are_proposed() -> anyhow::Result<()>
{
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    let mut auth = AuthClient::connect(server.client_url()).await?;
    let no_password = Some(UserAddOptions { no_password: true });

    let longest = "u".repeat(rsetcd::auth::MAX_NAME_BYTES);
    let too_long = "a".repeat(600);
    let err = auth
        .user_add(AuthUserAddRequest {
            name: too_long.clone(),
            password: "secret".into(),
            ..Default::default()
        })
        .await
        .expect_err("a 600-byte user name must be refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        format!(
            "etcdserver: user name is too long (at most {} bytes)",
            rsetcd::auth::MAX_NAME_BYTES
        )
    );
    let err = auth
        .role_add(AuthRoleAddRequest {
            name: too_long.clone(),
        })
        .await
        .expect_err("a 600-byte role name must be refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("role name is too long"), "{err:?}");

    // the longest allowed name works end to end
    auth.user_add(AuthUserAddRequest {
        name: longest.clone(),
        options: no_password,
        ..Default::default()
    })
    .await
    .context("add a user with the longest allowed name")?;
    auth.role_add(AuthRoleAddRequest {
        name: longest.clone(),
    })
    .await
    .context("add a role with the longest allowed name")?;
    ensure!(server.is_running(), "etcd died:\n{}", server.log_tail());

    stop(&mut server).await?;
    server.restart().await.context("restart")?;
    ensure!(
        users(&server).await? == vec![longest],
        "users after restart"
    );
    Ok(())
}

/// Writes `requests` into the stopped member's WAL as committed entries
/// after its last one, as if an older version had accepted them.
fn append_committed(data_dir: &std::path::Path, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
    let (mut wal, recovered) = Wal::open(&data_dir.join("member").join("wal"))?;
    let last = recovered
        .entries
        .last()
        .map(|e| e.index)
        .unwrap_or(recovered.snapshot.index);
    let term = recovered.hard_state.term;
    let entries: Vec<Entry> = payloads
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut e = Entry {
                term,
                index: last + 1 + i as u64,
                data: data.clone().into(),
                ..Default::default()
            };
            e.set_entry_type(EntryType::EntryNormal);
            e
        })
        .collect();
    wal.append_entries(&entries)?;
    let mut hs = recovered.hard_state.clone();
    hs.commit = last + payloads.len() as u64;
    wal.set_hard_state(&hs)?;
    wal.sync()?;
    Ok(())
}

fn entry(request: Request) -> Vec<u8> {
    InternalRaftRequest {
        header: Some(RequestHeader {
            id: 77,
            member_id: 1,
            ..Default::default()
        }),
        request: Some(request),
    }
    .encode_to_vec()
}

#[tokio::test]
async fn a_log_holding_entries_that_cannot_apply_replays_and_the_member_goes_on(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    let mut server = Server::start(Flavor::Ours, &data_dir, &[]).await?;
    server
        .kv()
        .await?
        .put(PutRequest {
            key: b"before".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        })
        .await?;
    stop(&mut server).await?;

    // What today's API refuses, written by an older version; an entry that
    // is not a request at all; then an ordinary put that must still apply.
    append_committed(
        &data_dir,
        &[
            entry(Request::AuthUserAdd(InternalUserAddRequest {
                name: "a".repeat(600),
                no_password: true,
                ..Default::default()
            })),
            b"\xff\xff\xff\xff not a protobuf".to_vec(),
            entry(Request::Put(PutRequest {
                key: b"after".to_vec(),
                value: b"2".to_vec(),
                ..Default::default()
            })),
        ],
    )?;

    for round in 0..2 {
        server
            .restart()
            .await
            .with_context(|| format!("restart {round} over the appended entries"))?;
        if get(&server, "after").await?.as_deref() != Some(b"2".as_slice()) {
            bail!("the put after the refused entries was not applied (round {round})");
        }
        ensure!(get(&server, "before").await?.as_deref() == Some(b"1".as_slice()));
        ensure!(users(&server).await?.is_empty(), "the refused user exists");
        // the first start applies the appended entries; the second finds
        // them applied
        let log = server.log();
        ensure!(
            round > 0 || log.contains("skipped a raft entry that is not a request"),
            "no log line for the undecodable entry:\n{log}"
        );
        stop(&mut server).await?;
    }
    Ok(())
}
