//! Starting and stopping a member: open the data dir, recover or bootstrap
//! identity and raft state, start the raft and apply threads, publish the
//! member through raft, serve clients, and shut down in order on SIGTERM.
//!
//! Log lines tooling waits for ("published local member to cluster through
//! raft", "ready to serve client requests", "enabled capabilities for
//! version") are printed at the moments etcd prints them.
//!
//! `run` is the order of things; `bootstrap` holds what happens before a
//! member serves (TLS, identity, joining, publishing), `listeners` the
//! ports, `lifecycle` readiness, the watchdog and signals.

mod bootstrap;
mod lifecycle;
mod listeners;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::apply::Applier;
use crate::cluster::Membership;
use crate::config::url_to_string as url_string;
use crate::member::{MemberState, Parts};
use crate::mvcc::Store;
use crate::peer::Transport;
use crate::propose::Wait;
use crate::raft::node::{NodeOptions, RaftNode};
use crate::server::{EtcdServer, Limits};
use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};
use crate::storage::schema::{META_CLUSTER_ID, META_MEMBER_ID};
use crate::storage::snapshot::{Snapshotter, META_CONF_STATE};
use crate::storage::DataDir;

use bootstrap::{check_backend_file, identity, log_internal, publish, SidesTls};
use lifecycle::{notify_when_ready, ping_watchdog, wait_for_signal};
use listeners::{bind, register_scrape_hooks, serve_metrics, set_quota_metric};

/// What the server needs from the configuration (etcd's `embed.Config`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub name: String,
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub listen_client_urls: Vec<url::Url>,
    /// HTTP-only client listeners (then `listen_client_urls` serve gRPC).
    pub listen_client_http_urls: Vec<url::Url>,
    pub advertise_client_urls: Vec<url::Url>,
    pub listen_peer_urls: Vec<url::Url>,
    pub initial_advertise_peer_urls: Vec<url::Url>,
    pub initial_cluster: Vec<(String, url::Url)>,
    pub strict_reconfig_check: bool,
    pub initial_cluster_token: String,
    pub initial_cluster_state_new: bool,
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    pub pre_vote: bool,
    pub grpc: crate::api::GrpcOptions,
    /// Serve etcd's JSON gateway (/v3/...) on the client listeners.
    pub enable_grpc_gateway: bool,
    /// --unsafe-no-fsync: the WAL's appends and the backend's commits are
    /// not fsynced (storage::set_unsafe_no_fsync; as etcd, segment cuts
    /// and snapshot files still are).
    pub unsafe_no_fsync: bool,
    /// --cors and --host-whitelist (api::access).
    pub cors: Vec<String>,
    pub host_whitelist: Vec<String>,
    /// `--metrics`: basic or extensive.
    pub metrics: crate::metrics::Level,
    /// Extra listeners for /metrics and the health endpoints.
    pub listen_metrics_urls: Vec<url::Url>,
    /// `--quota-backend-bytes`: 0 is etcd's default, negative disables it.
    pub quota_backend_bytes: i64,
    pub watch_progress_notify_interval: Duration,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`.
    pub auto_compaction: crate::config::AutoCompaction,
    /// `--experimental-initial-corrupt-check`.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time` (zero: off).
    pub corrupt_check_time: Duration,
    /// `--experimental-compaction-batch-limit` and `-sleep-interval`
    /// (etcd's 1000 and 10ms when 0).
    pub compaction_batch_limit: usize,
    pub compaction_sleep_interval: Duration,
    /// `--backend-batch-interval` and `--backend-batch-limit` (etcd's
    /// 100ms and 10,000 when 0; a negative limit commits every batch).
    pub backend_batch_interval: Duration,
    pub backend_batch_limit: usize,
    /// Certificates of the client and peer ports (https:// URLs).
    pub client_tls: crate::config::TlsConfig,
    pub peer_tls: crate::config::TlsConfig,
    pub cipher_suites: Vec<String>,
    pub tls_min_version: String,
    pub tls_max_version: String,
    pub self_signed_cert_validity_years: u64,
    /// `--auth-token`, `--auth-token-ttl` (seconds), `--bcrypt-cost`.
    pub auth_token: String,
    pub auth_token_ttl: Duration,
    pub bcrypt_cost: u32,
}

impl From<&crate::config::Config> for ServeOptions {
    fn from(c: &crate::config::Config) -> Self {
        ServeOptions {
            name: c.name.clone(),
            data_dir: c.data_dir.clone(),
            wal_dir: c.wal_dir.clone(),
            snapshot_count: c.snapshot_count,
            snapshot_catchup_entries: c.experimental.snapshot_catchup_entries,
            heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
            election_timeout: Duration::from_millis(c.election_timeout_ms),
            listen_client_urls: c.listen_client_urls.clone(),
            listen_client_http_urls: c.listen_client_http_urls.clone(),
            advertise_client_urls: c.advertise_client_urls.clone(),
            listen_peer_urls: c.listen_peer_urls.clone(),
            initial_advertise_peer_urls: c.initial_advertise_peer_urls.clone(),
            initial_cluster: c.initial_cluster.clone(),
            strict_reconfig_check: c.strict_reconfig_check,
            initial_cluster_token: c.initial_cluster_token.clone(),
            initial_cluster_state_new: c.initial_cluster_state == crate::config::ClusterState::New,
            max_request_bytes: c.max_request_bytes,
            max_txn_ops: c.max_txn_ops,
            enable_grpc_gateway: c.enable_grpc_gateway,
            unsafe_no_fsync: c.unsafe_no_fsync,
            cors: c.cors.clone(),
            host_whitelist: c.host_whitelist.clone(),
            pre_vote: c.pre_vote,
            metrics: crate::metrics::Level::from_flag(&c.metrics),
            listen_metrics_urls: c.listen_metrics_urls.clone(),
            quota_backend_bytes: c.quota_backend_bytes,
            watch_progress_notify_interval: c.experimental.watch_progress_notify_interval,
            auto_compaction: c.auto_compaction,
            initial_corrupt_check: c.experimental.initial_corrupt_check,
            corrupt_check_time: c.experimental.corrupt_check_time,
            compaction_batch_limit: match c.experimental.compaction_batch_limit {
                n if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => 1000,
            },
            compaction_sleep_interval: match c.experimental.compaction_sleep_interval {
                d if d.is_zero() => Duration::from_millis(10),
                d => d,
            },
            backend_batch_interval: match c.backend_batch_interval {
                d if d.is_zero() => Duration::from_millis(100),
                d => d,
            },
            backend_batch_limit: match c.backend_batch_limit {
                0 => 10_000,
                n if n < 0 => 1,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            client_tls: c.client_tls.clone(),
            peer_tls: c.peer_tls.clone(),
            cipher_suites: c.cipher_suites.clone(),
            tls_min_version: c.tls_min_version.clone(),
            tls_max_version: c.tls_max_version.clone(),
            self_signed_cert_validity_years: c.self_signed_cert_validity_years,
            auth_token: c.auth_token.clone(),
            auth_token_ttl: Duration::from_secs(c.auth_token_ttl_secs),
            bcrypt_cost: c.bcrypt_cost as u32,
            grpc: crate::api::GrpcOptions {
                keepalive_interval: c.grpc_keepalive_interval,
                keepalive_timeout: c.grpc_keepalive_timeout,
                max_concurrent_streams: c.max_concurrent_streams,
            },
        }
    }
}

/// Runs a member until SIGTERM/SIGINT. Returns after a clean shutdown.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    crate::storage::set_unsafe_no_fsync(opts.unsafe_no_fsync);
    if opts.unsafe_no_fsync {
        tracing::warn!(
            "--unsafe-no-fsync is set: the raft log's appends and the backend's commits are not fsynced; a crash of this machine or a power loss loses acknowledged writes"
        );
    }
    let urls = |u: &[url::Url]| u.iter().map(url::Url::to_string).collect::<Vec<_>>();
    let member_dir = opts.data_dir.join("member");
    let wal_dir = opts.wal_dir.clone().unwrap_or_default();
    let wal_path = opts.wal_dir.clone().unwrap_or(member_dir.join("wal"));
    // etcd's fields (etcd 3.5's names; more of them than rsetcd has settings for)
    tracing::info!(
        etcd_version = crate::ETCD_VERSION,
        rsetcd_version = env!("CARGO_PKG_VERSION"),
        go_os = std::env::consts::OS,
        go_arch = std::env::consts::ARCH,
        max_cpu_available = std::thread::available_parallelism().map_or(1, |n| n.get()),
        member_initialized = wal_path.is_dir(),
        name = opts.name.as_str(),
        data_dir = %opts.data_dir.display(),
        wal_dir = %wal_dir.display(),
        wal_dir_dedicated = opts.wal_dir.is_some(),
        member_dir = %member_dir.display(),
        snapshot_count = opts.snapshot_count,
        heartbeat_interval = ?opts.heartbeat_interval,
        election_timeout = ?opts.election_timeout,
        max_request_bytes = opts.max_request_bytes,
        pre_vote = opts.pre_vote,
        initial_cluster_state = if opts.initial_cluster_state_new { "new" } else { "existing" },
        initial_cluster_token = opts.initial_cluster_token.as_str(),
        quota_backend_bytes = opts.quota_backend_bytes,
        listen_peer_urls = ?urls(&opts.listen_peer_urls),
        listen_client_urls = ?urls(&opts.listen_client_urls),
        advertise_client_urls = ?urls(&opts.advertise_client_urls),
        initial_advertise_peer_urls = ?urls(&opts.initial_advertise_peer_urls),
        listen_metrics_urls = ?urls(&opts.listen_metrics_urls),
        "starting an etcd server"
    );
    let notifier = crate::notify::Notifier::from_env();
    crate::metrics::init(opts.metrics);
    set_quota_metric(opts.quota_backend_bytes);
    let data_dir = DataDir::open(&opts.data_dir, opts.wal_dir.as_deref())?;
    // until raft runs, a failed start takes back what it created
    let start_guard = data_dir.start_guard();
    let tls = SidesTls::load(&opts)?;
    // Bind before the (possibly long) replay, so a taken port fails at once.
    let mut listeners = Vec::new();
    let split = !opts.listen_client_http_urls.is_empty();
    let grpc_traffic = if split {
        crate::api::Traffic::Grpc
    } else {
        crate::api::Traffic::GrpcAndHttp
    };
    for u in &opts.listen_client_urls {
        listeners.push((u.clone(), grpc_traffic, bind(u).await?));
    }
    for u in &opts.listen_client_http_urls {
        listeners.push((u.clone(), crate::api::Traffic::Http, bind(u).await?));
    }
    let mut peer_listeners = Vec::new();
    for u in &opts.listen_peer_urls {
        peer_listeners.push((u.clone(), bind(u).await?));
    }
    let mut metrics_listeners = Vec::new();
    for u in &opts.listen_metrics_urls {
        metrics_listeners.push((u.clone(), bind(u).await?));
    }
    notifier.status("opening the backend and replaying the write-ahead log");

    // LMDB's map is address space, not memory: reserve well past the quota
    // so that the quota, not a full map, is what stops writes. A full map
    // would fail a committed entry's apply; so even with the quota disabled
    // NOSPACE is raised at three quarters of the map.
    let quota = crate::server::alarm::effective_quota(opts.quota_backend_bytes);
    let map_size = match quota {
        Some(q) => (q as usize).saturating_mul(4).max(DEFAULT_MAP_SIZE),
        None => 4 * DEFAULT_MAP_SIZE,
    };
    let quota = Some(quota.unwrap_or(i64::MAX).min((map_size / 4 * 3) as i64));
    crate::mvcc::defrag::remove_stray_copies(&data_dir.db_path);
    check_backend_file(&data_dir.db_path)?;
    let backend = Backend::open(&data_dir.db_path, map_size)?;
    let store = Arc::new(
        Store::open(backend)
            .with_context(|| format!("open backend {}", data_dir.db_path.display()))?,
    );
    let (member_id, cluster_id, bootstrap) = identity(&store, &opts, tls.peer.as_deref()).await?;
    crate::metrics::server().set_member_id(member_id);
    let membership = Arc::new(Membership::new(member_id, cluster_id));
    let alarms = Arc::new(crate::alarm::Alarms::from_meta(
        &store.meta_with_prefix(crate::alarm::META_ALARM_PREFIX)?,
    ));
    for a in alarms.get(crate::proto::etcdserverpb::AlarmType::None) {
        tracing::warn!(
            alarm = a.alarm().as_str_name(),
            from = format!("{:x}", a.member_id),
            "alarm active since before the restart"
        );
    }
    membership.load(&store)?;
    let auth = Arc::new(crate::auth::AuthStore::new(
        crate::auth::token::Provider::from_options(&opts.auth_token, opts.auth_token_ttl)?,
        opts.bcrypt_cost,
        opts.client_tls.client_cert_auth,
    ));
    auth.load(&store)?;
    let peers_authenticated = opts.listen_peer_urls.iter().all(|u| u.scheme() == "https")
        && tls.peer.as_ref().is_some_and(|t| t.info.client_cert_auth);
    auth.set_peers_unauthenticated(!peers_authenticated);
    let applied = store.applied()?;
    tracing::info!(
        local_member_id = format!("{member_id:x}"),
        cluster_id = format!("{cluster_id:x}"),
        applied_index = applied.index,
        "recovered member identity and backend"
    );

    let wait = Arc::new(Wait::default());
    // After a kill -9 the last commit's meta page may be only in the page
    // cache (NO_META_SYNC): sync before calling it durable, or the raft
    // thread could purge WAL entries a power cut would need.
    store.backend().sync()?;
    let durable = Arc::new(AtomicU64::new(applied.index));
    let (apply_tx, apply_rx) = mpsc::channel();
    let tick = opts.heartbeat_interval.max(Duration::from_millis(1));
    let election_ticks =
        (opts.election_timeout.as_millis() / tick.as_millis().max(1)).max(2) as usize;
    let snapshots = Arc::new(Snapshotter::new(
        data_dir
            .db_path
            .parent()
            .unwrap_or(&data_dir.root)
            .to_path_buf(),
        {
            let store = store.clone();
            Arc::new(move || store.backend().env.clone())
        },
    ));
    let conf_state = match store.get_meta(META_CONF_STATE)? {
        Some(b) => Some(
            <raft::eraftpb::ConfState as protobuf::Message>::parse_from_bytes(&b)
                .context("backend holds a malformed raft conf state")?,
        ),
        None => None,
    };
    let install_from = {
        let (store, snapshots, membership) = (store.clone(), snapshots.clone(), membership.clone());
        move |meta: &raft::eraftpb::SnapshotMetadata| -> anyhow::Result<u64> {
            let path = snapshots.path(meta.index);
            check_backend_file(&path)?;
            tracing::info!(index = meta.index, path = %path.display(), "installing the snapshot the WAL records (a previous run stopped before it was applied)");
            let keep: [&[u8]; 2] = [META_MEMBER_ID, META_CLUSTER_ID];
            let applied = store
                .install_snapshot(&path, &keep)
                .with_context(|| format!("install snapshot {}", path.display()))?;
            membership.load(&store)?;
            Ok(applied.index)
        }
    };
    let mut opened = RaftNode::open(
        NodeOptions {
            wal_dir: &data_dir.wal_dir,
            member_id,
            bootstrap,
            conf_state,
            applied: applied.index,
            tick,
            election_ticks,
            snapshot_count: opts.snapshot_count,
            snapshot_catchup_entries: opts.snapshot_catchup_entries,
            pre_vote: opts.pre_vote,
            install_snapshot: Some(Box::new(install_from)),
        },
        apply_tx,
        wait.clone(),
        durable.clone(),
        snapshots.clone(),
    )?;
    start_guard.disarm();
    if opened.fresh {
        tracing::info!(
            local_member_id = format!("{member_id:x}"),
            cluster_id = format!("{cluster_id:x}"),
            members = membership.members().len().max(opts.initial_cluster.len()),
            "starting a member of a new cluster"
        );
    }
    let request_timeout = Duration::from_secs(5) + 2 * opts.election_timeout;
    // As etcd: only a member that has data already is checked (a new one
    // has nothing to compare), before it serves peers or clients.
    if opts.initial_corrupt_check && !opened.fresh {
        crate::server::corrupt::initial_check(
            &store,
            &membership,
            tls.peer.as_deref(),
            request_timeout,
        )
        .await?;
    }
    let raft_handle = opened.handle.clone();
    let transport = Transport::new(
        membership.clone(),
        snapshots.clone(),
        Box::new(raft_handle.tx.clone()),
        tokio::runtime::Handle::current(),
        tls.peer.clone(),
    );
    opened.node.set_transport(transport.clone());
    let (peer_shutdown_tx, peer_shutdown_rx) = watch::channel(false);
    let mut peer_serving = Vec::new();
    let late_server = crate::api::peer::LateServer::default();
    for (u, l) in peer_listeners {
        tracing::info!(address = url_string(&u).as_str(), "serving peer traffic");
        let service = crate::api::peer::server(
            membership.clone(),
            &raft_handle,
            snapshots.clone(),
            store.clone(),
            late_server.clone(),
        );
        let mut stop = peer_shutdown_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|&s| s).await;
        };
        let server = tonic::transport::Server::builder().add_service(service);
        peer_serving.push(match (u.scheme(), &tls.peer) {
            ("https", Some(peer_tls)) => tokio::spawn(server.serve_with_incoming_shutdown(
                crate::tls::acceptor::incoming(l, peer_tls.clone()),
                stopped,
            )),
            _ => tokio::spawn(server.serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
                stopped,
            )),
        });
    }
    let raft_thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || opened.node.run())?;
    transport.connect_all();
    if let Some(every) = crate::notify::watchdog_interval() {
        tokio::spawn(ping_watchdog(
            notifier.clone(),
            raft_handle.shared.clone(),
            every,
        ));
    }

    let lessor = Arc::new(crate::lease::Lessor::new(opts.election_timeout));
    lessor.recover(store.leases()?, store.take_leased_keys());
    let view = store.read()?;
    let hub = Arc::new(crate::watch::Hub::new(
        view.current_rev(),
        view.compacted_rev(),
    ));
    drop(view);
    let (applied_tx, applied_rx) = watch::channel(applied.index);
    let member = Arc::new(MemberState::new(Parts {
        member_id,
        cluster_id,
        store: store.clone(),
        wait,
        lessor,
        hub,
        membership: membership.clone(),
        alarms,
        auth,
        transport: transport.clone(),
        snapshots: snapshots.clone(),
    }));
    let applier = Applier::new(
        member.clone(),
        crate::apply::Links {
            applied_tx,
            durable,
            raft: raft_handle.shared.clone(),
            on_internal: Box::new(log_internal),
        },
        crate::apply::Options {
            local_meta_keys: vec![META_MEMBER_ID.to_vec(), META_CLUSTER_ID.to_vec()],
            compaction_batch_limit: opts.compaction_batch_limit,
            compaction_sleep_interval: opts.compaction_sleep_interval,
            batch_interval: opts.backend_batch_interval,
            // the raft thread snapshots (and purges the WAL) only up to
            // the durable index: commit at least twice per snapshot-count
            batch_limit: opts.backend_batch_limit.min(
                usize::try_from(opts.snapshot_count / 2)
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
        },
    );
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || applier.run(apply_rx))?;

    let server = Arc::new(EtcdServer::new(
        member,
        raft_handle.clone(),
        applied_rx,
        crate::server::Options {
            limits: Limits {
                max_request_bytes: opts.max_request_bytes,
                max_txn_ops: opts.max_txn_ops,
                request_timeout,
                quota_backend_bytes: quota,
            },
            watch_progress_interval: opts.watch_progress_notify_interval,
            strict_reconfig_check: opts.strict_reconfig_check,
            election_timeout: opts.election_timeout,
        },
    ));
    // Followers' forwarded requests are answered from here on.
    let _ = late_server.set(Arc::downgrade(&server));
    tokio::spawn(crate::server::lease::run(
        server.clone(),
        opts.election_timeout,
    ));
    crate::server::compactor::spawn(
        &server,
        opts.auto_compaction,
        crate::server::compactor::revision_check_interval(),
    );
    crate::server::corrupt::spawn_periodic(&server, opts.corrupt_check_time);

    notifier.status("waiting for a leader; publishing this member through raft");
    publish(&server, &opts).await?;
    register_scrape_hooks(&server);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let client_routes = crate::api::routes(
        server.clone(),
        crate::api::access::AccessOptions {
            cors: opts.cors.clone(),
            host_whitelist: opts.host_whitelist.clone(),
            json_gateway: opts.enable_grpc_gateway,
        },
    );
    let mut serving = Vec::new();
    let mut client_addrs = Vec::new();
    tracing::info!("ready to serve client requests");
    for (u, traffic, l) in listeners {
        let addr = l.local_addr()?;
        let secure = match (u.scheme(), &tls.client) {
            ("https", Some(client_tls)) => Some(client_tls.clone()),
            _ => None,
        };
        if traffic != crate::api::Traffic::Http {
            client_addrs.push((addr, secure.is_some()));
        }
        let routes = client_routes.for_traffic(traffic);
        serving.push(match secure {
            Some(client_tls) => {
                tracing::info!(
                    traffic = traffic.label(),
                    address = addr.to_string(),
                    "serving client traffic securely"
                );
                tokio::spawn(crate::api::serve_tls(
                    l,
                    client_tls,
                    routes.clone(),
                    opts.grpc.clone(),
                    shutdown_rx.clone(),
                ))
            }
            None => {
                tracing::warn!(
                    traffic = traffic.label(),
                    address = addr.to_string(),
                    "serving client traffic insecurely; this is strongly discouraged!"
                );
                tokio::spawn(crate::api::serve(
                    l,
                    routes.clone(),
                    opts.grpc.clone(),
                    shutdown_rx.clone(),
                ))
            }
        });
    }
    let mut metrics_serving = Vec::new();
    for (u, l) in metrics_listeners {
        tracing::info!(address = url_string(&u).as_str(), "serving metrics");
        let secure = match u.scheme() {
            "https" => tls.client.clone(),
            _ => None,
        };
        metrics_serving.push(tokio::spawn(serve_metrics(
            l,
            secure,
            server.clone(),
            shutdown_rx.clone(),
        )));
    }
    let readiness = tokio::spawn(notify_when_ready(
        server.clone(),
        client_addrs,
        notifier.clone(),
    ));

    let mut removed = transport.removed();
    let signal = tokio::select! {
        signal = wait_for_signal() => Some(signal),
        _ = removed.wait_for(|&r| r) => None,
    };
    if let Some(signal) = signal {
        tracing::info!(signal, "received signal; shutting down");
    } else {
        tracing::warn!(
            local_member_id = format!("{member_id:x}"),
            "{}; stopping",
            crate::peer::REMOVED_MEMBER
        );
    }
    readiness.abort();
    notifier.stopping("shutting down");
    let _ = shutdown_tx.send(true);
    // In-flight requests get the request timeout to finish, as etcd's
    // stopServers gives GracefulStop; then the member stops waiting for
    // streams that never end by themselves (lease keep-alives, watches,
    // waiting locks), or one client could hold it up forever: raft and
    // apply stop as usual, and those connections end with the process.
    let listeners: Vec<_> = metrics_serving
        .iter()
        .map(|s| s.abort_handle())
        .chain(serving.iter().map(|s| s.abort_handle()))
        .collect();
    let drain = async {
        for s in metrics_serving {
            if let Ok(Err(e)) = s.await {
                tracing::warn!(error = %e, "metrics listener stopped with an error");
            }
        }
        for s in serving {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "client listener stopped with an error"),
                Err(e) if e.is_cancelled() => {}
                Err(e) => tracing::warn!(error = %e, "client listener task failed"),
            }
        }
    };
    if tokio::time::timeout(request_timeout, drain).await.is_err() {
        tracing::warn!(
            timeout = ?request_timeout,
            "in-flight requests did not finish; stopping without them"
        );
        for l in listeners {
            l.abort();
        }
    }
    let _ = raft_handle.tx.send(crate::raft::RaftMsg::Shutdown);
    drop(server);
    drop(raft_handle);
    tokio::task::spawn_blocking(move || {
        let _ = raft_thread.join();
        let _ = apply_thread.join();
    })
    .await?;
    // Peers are served until raft stopped: a leader hands over leadership
    // on the way out and needs their answers. Their streams never end on
    // their own, so the listeners are dropped rather than drained.
    let _ = peer_shutdown_tx.send(true);
    for s in peer_serving {
        s.abort();
    }
    tracing::info!("stopped serving; data synced");
    Ok(())
}
