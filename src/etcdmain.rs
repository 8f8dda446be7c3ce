//! Starting and stopping a member: open the data dir, recover or bootstrap
//! identity and raft state, start the raft and apply threads, publish the
//! member through raft, serve clients, and shut down in order on SIGTERM.
//!
//! Log lines tooling waits for ("published local member to cluster through
//! raft", "ready to serve client requests", "enabled capabilities for
//! version") are printed at the moments etcd prints them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context as _};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apply::{Applier, META_CLUSTER_VERSION};
use crate::cluster::{self, Member, Membership};
use crate::config::url_to_string as url_string;
use crate::mvcc::Store;
use crate::peer::Transport;
use crate::propose::Wait;
use crate::proto::internal::internal_raft_request::Request as Internal;
use crate::proto::internal::{ClusterVersionSet, MemberAttributes};
use crate::raft::node::{NodeOptions, RaftNode};
use crate::server::{ClusterContext, EtcdServer, Limits};
use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};
use crate::storage::snapshot::{Snapshotter, META_CONF_STATE};
use crate::storage::DataDir;

use crate::storage::schema::{META_CLUSTER_ID, META_MEMBER_ID};

/// What the server needs from the configuration (etcd's `embed.Config`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub name: String,
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub snapshot_count: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub listen_client_urls: Vec<url::Url>,
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
            heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
            election_timeout: Duration::from_millis(c.election_timeout_ms),
            listen_client_urls: c.listen_client_urls.clone(),
            advertise_client_urls: c.advertise_client_urls.clone(),
            listen_peer_urls: c.listen_peer_urls.clone(),
            initial_advertise_peer_urls: c.initial_advertise_peer_urls.clone(),
            initial_cluster: c.initial_cluster.clone(),
            strict_reconfig_check: c.strict_reconfig_check,
            initial_cluster_token: c.initial_cluster_token.clone(),
            initial_cluster_state_new: c.initial_cluster_state == crate::config::ClusterState::New,
            max_request_bytes: c.max_request_bytes,
            max_txn_ops: c.max_txn_ops,
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
    for u in &opts.listen_client_urls {
        listeners.push(bind(u).await?);
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
    let computed_tx = Arc::new(watch::Sender::new(applied.index));
    let applier = Applier {
        store: store.clone(),
        wait: wait.clone(),
        member_id,
        applied_tx,
        computed_tx: computed_tx.clone(),
        durable,
        on_internal: Box::new(log_internal),
        lessor: lessor.clone(),
        hub: hub.clone(),
        membership: membership.clone(),
        alarms: alarms.clone(),
        auth: auth.clone(),
        snapshots: snapshots.clone(),
        transport: transport.clone(),
        local_meta_keys: vec![META_MEMBER_ID.to_vec(), META_CLUSTER_ID.to_vec()],
        raft: raft_handle.shared.clone(),
        compaction_batch_limit: opts.compaction_batch_limit,
        compaction_sleep_interval: opts.compaction_sleep_interval,
    };
    let apply_thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || applier.run(apply_rx))?;

    let (ready_tx, ready_rx) = watch::channel(false);
    let server = Arc::new(EtcdServer::new(
        member_id,
        cluster_id,
        opts.name.clone(),
        store.clone(),
        raft_handle.clone(),
        wait,
        applied_rx,
        computed_tx,
        Limits {
            max_request_bytes: opts.max_request_bytes,
            max_txn_ops: opts.max_txn_ops,
            request_timeout,
            quota_backend_bytes: quota,
        },
        ready_rx,
        lessor,
        hub,
        opts.watch_progress_notify_interval,
        ClusterContext {
            membership: membership.clone(),
            transport: transport.clone(),
            strict_reconfig_check: opts.strict_reconfig_check,
            election_timeout: opts.election_timeout,
            alarms,
            auth,
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
    let _ = ready_tx.send(true);
    register_scrape_hooks(&server);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let routes = crate::api::routes(server.clone());
    let mut serving = Vec::new();
    let mut client_addrs = Vec::new();
    tracing::info!("ready to serve client requests");
    for (u, l) in opts.listen_client_urls.iter().zip(listeners) {
        let addr = l.local_addr()?;
        let secure = match (u.scheme(), &tls.client) {
            ("https", Some(client_tls)) => Some(client_tls.clone()),
            _ => None,
        };
        client_addrs.push((addr, secure.is_some()));
        serving.push(match secure {
            Some(client_tls) => {
                tracing::info!(
                    traffic = "grpc+http",
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
                    traffic = "grpc+http",
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

/// The TLS of the client and the peer port, loaded before anything binds
/// (etcd's configureClientListeners / configurePeerListeners checks), and
/// watched for changed files.
struct SidesTls {
    client: Option<Arc<crate::tls::ReloadableTls>>,
    peer: Option<Arc<crate::tls::ReloadableTls>>,
}

impl SidesTls {
    fn load(opts: &ServeOptions) -> anyhow::Result<SidesTls> {
        use crate::tls::{ReloadableTls, Role, Suites, TlsInfo};
        let suites = Suites::new(
            &opts.cipher_suites,
            &opts.tls_min_version,
            &opts.tls_max_version,
        )?;
        if !opts.cipher_suites.is_empty() {
            // Outgoing peer connections are made by tonic with the process
            // default provider: the same suites apply there.
            let _ =
                rustls::crypto::CryptoProvider::install_default(suites.provider.as_ref().clone());
        }
        let info = |role, cfg, urls: &[url::Url]| {
            TlsInfo::from_config(
                role,
                cfg,
                &suites,
                &opts.data_dir,
                urls,
                opts.self_signed_cert_validity_years,
            )
        };
        let client = info(Role::Client, &opts.client_tls, &opts.listen_client_urls)?;
        let peer = info(Role::Peer, &opts.peer_tls, &opts.listen_peer_urls)?;
        for (side, info, urls) in [
            (Role::Client, &client, &opts.listen_client_urls),
            (Role::Peer, &peer, &opts.listen_peer_urls),
        ] {
            for u in urls {
                let text = url_string(u);
                match (u.scheme(), info) {
                    ("https", None) if side == Role::Client => bail!(
                        "TLS key/cert (--cert-file, --key-file) must be provided for client url {text} with HTTPS scheme"
                    ),
                    ("https", None) => bail!(
                        "cannot listen on TLS for {}:{}: KeyFile and CertFile are not presented",
                        u.host_str().unwrap_or_default(),
                        u.port().unwrap_or_default()
                    ),
                    ("http", Some(_)) => tracing::warn!(
                        url = text.as_str(),
                        side = side.as_str(),
                        "scheme is HTTP while key and cert files are present; ignoring key and cert files"
                    ),
                    _ => {}
                }
            }
        }
        // https:// metrics listeners serve with the client certificates.
        if let (Some(u), None) = (
            opts.listen_metrics_urls
                .iter()
                .find(|u| u.scheme() == "https"),
            &client,
        ) {
            bail!(
                "cannot listen on TLS for {}:{}: KeyFile and CertFile are not presented",
                u.host_str().unwrap_or_default(),
                u.port().unwrap_or_default()
            );
        }
        let load = |info: Option<TlsInfo>| -> anyhow::Result<Option<Arc<ReloadableTls>>> {
            let Some(info) = info else { return Ok(None) };
            tracing::info!(
                tls_info = info.describe().as_str(),
                cipher_suites = %format!("{:?}", opts.cipher_suites),
                "starting with {} TLS",
                info.role.as_str()
            );
            let role = info.role;
            Ok(Some(ReloadableTls::new(info).with_context(|| {
                format!("cannot load the {} TLS certificates", role.as_str())
            })?))
        };
        let sides = SidesTls {
            client: load(client)?,
            peer: load(peer)?,
        };
        crate::tls::reload::spawn(
            sides
                .client
                .iter()
                .chain(sides.peer.iter())
                .cloned()
                .collect(),
        );
        Ok(sides)
    }
}

/// Refuses a damaged LMDB file before LMDB maps it (see
/// `storage::lmdb_check`): a truncated or overwritten file would otherwise
/// crash the process with SIGBUS on first use.
fn check_backend_file(path: &std::path::Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if let Some(summary) = crate::storage::lmdb_check::check_file(path)? {
        tracing::info!(
            path = %path.display(),
            tree_pages = summary.tree_pages,
            overflow_pages = summary.overflow_pages,
            took = ?started.elapsed(),
            "checked the structure of the backend file"
        );
    }
    Ok(())
}

async fn bind(u: &url::Url) -> anyhow::Result<TcpListener> {
    if !matches!(u.scheme(), "http" | "https") {
        bail!("listen URL {u}: only http:// and https:// are supported");
    }
    let host = u.host_str().unwrap_or("localhost");
    let port = u
        .port()
        .with_context(|| format!("listen URL {u} has no port"))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolve {host}"))?
        .collect();
    // etcd binds "localhost" to its IPv4 loopback address.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("{host} resolves to no address"))?;
    // Go's text: tests and scripts retry on "bind: address already in use".
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "listen tcp {addr}: bind: {}",
            crate::gofmt::os_error_text(&e)
        )
    })
}

/// The member and cluster ids: stored ones on restart (the initial-*
/// settings are then ignored, as etcd ignores them), derived ones for a new
/// cluster, learned from the cluster's members when joining one. Returns
/// the members to bootstrap a new cluster's log with.
async fn identity(
    store: &Store,
    opts: &ServeOptions,
    peer_tls: Option<&crate::tls::ReloadableTls>,
) -> anyhow::Result<(u64, u64, Option<Vec<Member>>)> {
    let read_id = |key: &[u8]| -> anyhow::Result<Option<u64>> {
        Ok(match store.get_meta(key)? {
            None => None,
            Some(b) => Some(u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .context("backend holds a malformed member id")?,
            )),
        })
    };
    if let (Some(m), Some(c)) = (read_id(META_MEMBER_ID)?, read_id(META_CLUSTER_ID)?) {
        if !opts.initial_cluster.is_empty() {
            tracing::info!(
                "the data dir holds a member already; --initial-cluster* settings are ignored"
            );
        }
        return Ok((m, c, None));
    }
    let initial: Vec<(String, String)> = opts
        .initial_cluster
        .iter()
        .map(|(n, u)| (n.clone(), url_string(u)))
        .collect();
    let own: Vec<String> = initial
        .iter()
        .filter(|(n, _)| *n == opts.name)
        .map(|(_, u)| u.clone())
        .collect();
    if own.is_empty() {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            opts.name
        );
    }
    let mut advertised: Vec<String> = opts
        .initial_advertise_peer_urls
        .iter()
        .map(url_string)
        .collect();
    advertised.sort();
    let mut own_sorted = own.clone();
    own_sorted.sort();
    if advertised != own_sorted {
        bail!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (\"{}\"(resolved from \"{}\") != \"{}\"(resolved from \"{}\"))",
            opts.name,
            own.join(","),
            advertised.join(","),
            advertised.join(","),
            advertised.join(","),
            own_sorted.join(","),
            own_sorted.join(",")
        );
    }
    let (member_id, cluster_id, bootstrap, members) = if opts.initial_cluster_state_new {
        let members = cluster::initial_members(&initial, &opts.initial_cluster_token);
        let cluster_id = cluster::initial_cluster_id(&members);
        let member_id = members
            .iter()
            .find(|m| m.name == opts.name)
            .map(|m| m.id)
            .context("local member missing from the initial cluster")?;
        (member_id, cluster_id, Some(members.clone()), members)
    } else {
        let (cluster_id, members) = join(&initial, &own, peer_tls).await?;
        let me = {
            let m = Membership::new(0, cluster_id);
            for x in &members {
                m.upsert(x.clone());
            }
            m.find_by_peer_urls(&own)
        };
        let Some(me) = me else {
            bail!(
                "error validating peerURLs {{ClusterID:{cluster_id:x} Members:[{}]}}: member with peer URLs {} is not in the cluster; add it first with `etcdctl member add {} --peer-urls={}`",
                members
                    .iter()
                    .map(|m| format!("&{{ID:{:x} Name:{} PeerURLs:[{}]}}", m.id, m.name, m.peer_urls.join(" ")))
                    .collect::<Vec<_>>()
                    .join(" "),
                own.join(","),
                opts.name,
                own.join(",")
            );
        };
        tracing::info!(
            local_member_id = format!("{:x}", me.id),
            cluster_id = format!("{cluster_id:x}"),
            "joining an existing cluster"
        );
        (me.id, cluster_id, None, members)
    };
    let mut wt = store.write()?;
    wt.put_meta(META_MEMBER_ID, &member_id.to_be_bytes())?;
    wt.put_meta(META_CLUSTER_ID, &cluster_id.to_be_bytes())?;
    if bootstrap.is_none() {
        // A joining member knows the others before the log reaches it.
        for m in &members {
            wt.put_meta(
                &cluster::member_key(m.id),
                &prost::Message::encode_to_vec(m),
            )?;
        }
    }
    wt.commit(store.applied()?)?;
    Ok((member_id, cluster_id, bootstrap))
}

/// Asks the other members named in --initial-cluster for the cluster's
/// membership (etcd's GetClusterFromRemotePeers).
async fn join(
    initial: &[(String, String)],
    own: &[String],
    peer_tls: Option<&crate::tls::ReloadableTls>,
) -> anyhow::Result<(u64, Vec<Member>)> {
    use crate::proto::peer::peer_client::PeerClient;
    let mut errors = Vec::new();
    for attempt in 0..10 {
        for (_, u) in initial.iter().filter(|(_, u)| !own.contains(u)) {
            let endpoint = crate::peer::transport::PeerEndpoint::new(u, peer_tls, |e| {
                e.connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(2))
            })?;
            let result = async {
                let mut client = PeerClient::new(endpoint.connect().await?);
                anyhow::Ok(
                    client
                        .members(crate::proto::peer::MembersRequest {})
                        .await?
                        .into_inner(),
                )
            }
            .await;
            match result {
                Ok(r) => return Ok((r.cluster_id, r.members)),
                Err(e) => errors.push(format!("{u}: {e:#}")),
            }
        }
        if attempt < 9 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    errors.dedup();
    bail!(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs ({})",
        errors.join("; ")
    )
}

/// etcd's publish: announce name and client URLs through raft, then (as
/// leader of a new cluster) set the cluster version.
async fn publish(server: &EtcdServer, opts: &ServeOptions) -> anyhow::Result<()> {
    let mut leader = server.raft.leader_rx.clone();
    leader.wait_for(|&l| l != 0).await?;
    let attrs = MemberAttributes {
        id: server.member_id,
        name: opts.name.clone(),
        client_urls: opts.advertise_client_urls.iter().map(url_string).collect(),
    };
    let request_path = format!("/0/members/{:x}/attributes", server.member_id);
    loop {
        match server.propose(attrs.clone()).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "failed to publish local member to cluster through raft; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!(
        local_member_id = format!("{:x}", server.member_id),
        local_member_attributes = format!(
            "{{Name:{} ClientURLs:[{}]}}",
            attrs.name,
            attrs.client_urls.join(" ")
        ),
        request_path = request_path.as_str(),
        cluster_id = format!("{:x}", server.cluster_id),
        publish_timeout = "7s",
        "published local member to cluster through raft"
    );
    let stored = server.store.get_meta(META_CLUSTER_VERSION)?;
    if let Some(v) = &stored {
        let v = String::from_utf8_lossy(v);
        crate::metrics::server().set_cluster_version(&v);
        let short = v.rsplit_once('.').map(|(a, _)| a).unwrap_or(&v).to_string();
        tracing::info!(
            cluster_version = short.as_str(),
            "set cluster version from store"
        );
        tracing::info!(
            cluster_version = short.as_str(),
            "enabled capabilities for version"
        );
    }
    let has_version = stored.is_some();
    if !has_version
        && server
            .raft
            .shared
            .is_leader
            .load(std::sync::atomic::Ordering::Acquire)
    {
        tracing::info!("setting up initial cluster version using v3 API");
        let set = ClusterVersionSet {
            version: crate::CLUSTER_VERSION.to_string(),
        };
        server.propose(set).await?;
        // Answers go out before the backend commit; /version reads the
        // backend, so wait for it before serving clients.
        server.serializable_read().await?;
    }
    Ok(())
}

/// Called by the apply thread after an internal request is committed.
fn log_internal(r: &Internal) {
    if let Internal::ClusterVersion(v) = r {
        crate::metrics::server().set_cluster_version(&v.version);
        let short = v
            .version
            .rsplit_once('.')
            .map(|(a, _)| a)
            .unwrap_or(&v.version);
        tracing::info!(cluster_version = short, "set initial cluster version");
        tracing::info!(cluster_version = short, "enabled capabilities for version");
        tracing::info!(cluster_version = short, "cluster version is updated");
    }
    if let Internal::MemberAttributes(m) = r {
        tracing::debug!(
            member = m.name.as_str(),
            size = m.encoded_len(),
            "applied member attributes"
        );
    }
}

/// Waits for SIGTERM or SIGINT; returns its name as Go prints it (etcd
/// logs `signal`).
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        crate::fatal("cannot install signal handlers");
    };
    tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupt",
    }
}

use crate::server::alarm::{DEFAULT_QUOTA_BYTES, MAX_QUOTA_BYTES};

/// `etcd_server_quota_backend_bytes` as etcd sets it: the default for 0,
/// nothing for a negative (disabled) quota.
fn set_quota_metric(quota: i64) {
    let gauge = &crate::metrics::server().quota_backend_bytes;
    match quota {
        q if q < 0 => {}
        0 => gauge.set(DEFAULT_QUOTA_BYTES),
        q => {
            gauge.set(q);
            if q > MAX_QUOTA_BYTES {
                tracing::warn!(
                    quota_size_bytes = q,
                    quota_maximum_size_bytes = MAX_QUOTA_BYTES,
                    "quota exceeds the maximum value"
                );
            }
        }
    }
}

/// Values read from the member's state when Prometheus scrapes.
fn register_scrape_hooks(server: &Arc<EtcdServer>) {
    // Weak: the registry lives for the process, the server does not.
    let server = Arc::downgrade(server);
    crate::metrics::on_scrape(move || {
        let Some(s) = server.upgrade() else { return };
        let server_metrics = crate::metrics::server();
        server_metrics
            .proposals_applied
            .set(s.applied_index() as i64);
        let backlog = s
            .raft
            .shared
            .apply_backlog_bytes
            .load(std::sync::atomic::Ordering::Acquire);
        server_metrics
            .apply_backlog_bytes
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let mvcc = crate::metrics::mvcc();
        if let Ok((total, in_use)) = s.store.db_size() {
            mvcc.db_total_size_in_bytes.set(total);
            mvcc.db_total_size_in_use_in_bytes.set(in_use);
        }
        mvcc.keys_total.set(s.store.live_keys() as i64);
        if let Ok(view) = s.store.read() {
            mvcc.current_revision.set(view.current_rev());
            mvcc.compact_revision.set(view.compacted_rev());
        };
        let auth = crate::metrics::auth();
        auth.revision
            .set(i64::try_from(s.auth.revision()).unwrap_or(i64::MAX));
        auth.peers_unauthenticated
            .set(i64::from(s.auth.bypassable_through_peers()));
    });
}

/// A `--listen-metrics-urls` listener: /metrics and the health endpoints
/// over plain HTTP, until shutdown.
async fn serve_metrics(
    listener: TcpListener,
    tls: Option<Arc<crate::tls::ReloadableTls>>,
    server: Arc<EtcdServer>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = crate::api::http::metrics_listener_routes(server);
    let stopped = async move {
        let _ = shutdown.wait_for(|&s| s).await;
    };
    match tls {
        // As etcd: https:// metrics listeners use the client certificates.
        Some(tls) => {
            axum::serve(crate::tls::acceptor::AxumListener::new(listener, tls)?, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}

/// Tells systemd READY=1 once the member has caught up with the commit
/// index it learned on joining and a client listener answers a
/// linearizable read, end to end over gRPC.
async fn notify_when_ready(
    server: Arc<EtcdServer>,
    client_addrs: Vec<(SocketAddr, bool)>,
    notifier: crate::notify::Notifier,
) {
    let committed = server
        .raft
        .shared
        .committed
        .load(std::sync::atomic::Ordering::Acquire);
    notifier.status(&format!(
        "catching up: applied {} of {committed} committed entries",
        server.applied_index()
    ));
    let mut applied = server.applied_rx.clone();
    if applied.wait_for(|&a| a >= committed).await.is_err() {
        return;
    }
    // A plain listener when there is one: no certificate is involved.
    let Some(&(addr, secure)) = client_addrs
        .iter()
        .find(|(_, secure)| !secure)
        .or(client_addrs.first())
    else {
        return;
    };
    let target = reachable(addr);
    notifier.status(&format!("checking a linearizable read on {target}"));
    let mut attempt = 0u32;
    loop {
        // A TLS listener may want a client certificate this member does
        // not hold (and a bare connection would be logged as a refused
        // handshake): the listener is bound, the read is made in-process.
        let checked = if secure {
            in_process_read(&server).await
        } else {
            linearizable_read_via(target).await
        };
        match checked {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                if attempt % 10 == 1 {
                    tracing::warn!(address = %target, error = %e, "readiness check: linearizable read failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let addrs: Vec<String> = client_addrs.iter().map(|(a, _)| a.to_string()).collect();
    notifier.ready(&format!("serving client requests on {}", addrs.join(", ")));
}

/// A listener bound to a wildcard address is reached over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// One linearizable Range through the client port, as a client sees it.
async fn linearizable_read_via(addr: SocketAddr) -> anyhow::Result<()> {
    use crate::proto::etcdserverpb::kv_client::KvClient;
    use crate::proto::etcdserverpb::RangeRequest;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    let mut client = KvClient::new(endpoint.connect().await?);
    client
        .range(RangeRequest {
            key: b"\0".to_vec(),
            limit: 1,
            keys_only: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// The readiness check of a TLS-only member: a linearizable read.
async fn in_process_read(server: &EtcdServer) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(5), server.linearizable_read())
        .await
        .context("linearizable read timed out")??;
    Ok(())
}

/// WATCHDOG=1 every `every` while the raft thread keeps ticking; a raft
/// loop stuck for longer than a ping interval (plus a second of grace for
/// a slow fsync) stops the pings, so that systemd restarts the member.
async fn ping_watchdog(
    notifier: crate::notify::Notifier,
    raft: Arc<crate::raft::RaftShared>,
    every: Duration,
) {
    let ticks = || raft.ticks.load(std::sync::atomic::Ordering::Relaxed);
    let (mut last_ticks, mut last_advance) = (ticks(), tokio::time::Instant::now());
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now_ticks = ticks();
        if now_ticks != last_ticks {
            (last_ticks, last_advance) = (now_ticks, tokio::time::Instant::now());
        }
        if last_advance.elapsed() <= every + Duration::from_secs(1) {
            notifier.watchdog();
        } else {
            tracing::warn!(
                stalled_for = ?last_advance.elapsed(),
                "raft loop is not ticking; not pinging the systemd watchdog"
            );
        }
    }
}
