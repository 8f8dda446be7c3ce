//! Crash points at the durable steps (issue 15), for the robustness
//! campaign: the `fail` crate, the Rust counterpart of etcd's gofail,
//! compiled in only with `--features failpoints`; without the feature
//! `failpoint!` expands to nothing.
//!
//! A build with the feature reads `FAILPOINTS` at start (`name=actions;…`,
//! the fail crate's syntax, e.g. `raftAfterSave=3*off->panic`) and, when
//! `FAILPOINTS_HTTP` names an address, serves gofail's endpoint there:
//! `PUT /<name>` with the actions as the body, `DELETE /<name>`, `GET /`
//! lists them. A panic aborts the process (`abort_on_panic`): a crash at
//! that step. The points, with etcd's names where etcd has one:
//!
//! | point | where |
//! |---|---|
//! | `raftBeforeSave`, `walBeforeFsync`, `raftAfterSave` | a raft Ready's WAL write: before it, written but not fsynced, fsynced but not yet acknowledged |
//! | `applyAfterPublish` | a batch applied, published and answered, its LMDB txn still open (not committed) |
//! | `backendBeforeCommit`, `backendAfterCommit` | the open LMDB txn's commit |
//! | `compactBeforeCommitBatch`, `compactAfterCommitBatch` | one batch of a compaction's deletions |
//! | `defragBeforeCopy`, `defragBeforeRename` | a defragmentation |
//! | `raftMidSnapshotSend` | a snapshot sent to a follower: a chunk handed to the stream, the rest not |
//! | `raftMidSnapshotReceive`, `raftAfterReceiveSnap` | the follower receiving it: part of it written, or saved whole (renamed, before the raft thread records it) |
//! | `raftAfterSaveSnap` | the raft thread has recorded it in the WAL, the backend does not have it yet |
//! | `raftBeforeApplySnap`, `raftAfterApplySnap` | the apply thread installing it in the backend |

/// A named crash point (see the module's table). Nothing without the
/// `failpoints` feature.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}

/// Reads `FAILPOINTS` and, when `FAILPOINTS_HTTP` is set, serves the
/// control endpoint on the current runtime. The scenario must live as
/// long as the process.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    let scenario = fail::FailScenario::setup();
    if let Ok(addr) = std::env::var("FAILPOINTS_HTTP") {
        tokio::spawn(serve(addr));
    }
    tracing::warn!(
        points = ?fail::list(),
        "this build has failpoints (a test build: never run it in production)"
    );
    scenario
}

#[cfg(feature = "failpoints")]
async fn serve(addr: String) {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;

    async fn list() -> String {
        fail::list()
            .into_iter()
            .map(|(name, actions)| format!("{name}={actions}\n"))
            .collect()
    }
    async fn set(Path(name): Path<String>, actions: String) -> (StatusCode, String) {
        match fail::cfg(name, actions.trim()) {
            Ok(()) => (StatusCode::NO_CONTENT, String::new()),
            Err(e) => (StatusCode::BAD_REQUEST, e),
        }
    }
    async fn remove(Path(name): Path<String>) -> StatusCode {
        fail::remove(name);
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/", get(list))
        .route("/{name}", axum::routing::put(set).delete(remove));
    match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => {
            tracing::info!(address = addr.as_str(), "serving the failpoints endpoint");
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the failpoints endpoint stopped");
            }
        }
        Err(e) => crate::fatal(&format!("FAILPOINTS_HTTP {addr}: {e}")),
    }
}
