//! Before a member serves: its TLS loaded, its backend checked, its
//! identity recovered from the data dir or derived (new cluster) or learned
//! from the members (joining), and its attributes published through raft.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use prost::Message as _;

use crate::apply::META_CLUSTER_VERSION;
use crate::cluster::{self, Member, Membership};
use crate::config::url_to_string as url_string;
use crate::mvcc::Store;
use crate::proto::internal::internal_raft_request::Request as Internal;
use crate::proto::internal::{ClusterVersionSet, MemberAttributes};
use crate::server::EtcdServer;

use crate::storage::schema::{META_CLUSTER_ID, META_MEMBER_ID};

use super::ServeOptions;

/// The TLS of the client and the peer port, loaded before anything binds
/// (etcd's configureClientListeners / configurePeerListeners checks), and
/// watched for changed files.
pub(super) struct SidesTls {
    pub(super) client: Option<Arc<crate::tls::ReloadableTls>>,
    pub(super) peer: Option<Arc<crate::tls::ReloadableTls>>,
}

impl SidesTls {
    pub(super) fn load(opts: &ServeOptions) -> anyhow::Result<SidesTls> {
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
pub(super) fn check_backend_file(path: &std::path::Path) -> anyhow::Result<()> {
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

/// The member and cluster ids: stored ones on restart (the initial-*
/// settings are then ignored, as etcd ignores them), derived ones for a new
/// cluster, learned from the cluster's members when joining one. Returns
/// the members to bootstrap a new cluster's log with.
pub(super) async fn identity(
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
pub(super) async fn join(
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
pub(super) async fn publish(server: &EtcdServer, opts: &ServeOptions) -> anyhow::Result<()> {
    let mut leader = server.leader_changes();
    leader.wait_for(|&l| l != 0).await?;
    let attrs = MemberAttributes {
        id: server.member_id(),
        name: opts.name.clone(),
        client_urls: opts.advertise_client_urls.iter().map(url_string).collect(),
    };
    let request_path = format!("/0/members/{:x}/attributes", server.member_id());
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
        local_member_id = format!("{:x}", server.member_id()),
        local_member_attributes = format!(
            "{{Name:{} ClientURLs:[{}]}}",
            attrs.name,
            attrs.client_urls.join(" ")
        ),
        request_path = request_path.as_str(),
        cluster_id = format!("{:x}", server.cluster_id()),
        publish_timeout = "7s",
        "published local member to cluster through raft"
    );
    let stored = server.store().get_meta(META_CLUSTER_VERSION)?;
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
    if !has_version && server.is_leader() {
        tracing::info!("setting up initial cluster version using v3 API");
        let set = ClusterVersionSet {
            version: crate::CLUSTER_VERSION.to_string(),
        };
        // answered after its commit (an internal request): /version,
        // which reads the backend, has it
        server.propose(set).await?;
    }
    Ok(())
}

/// Called by the apply thread after an internal request is committed.
pub(super) fn log_internal(r: &Internal) {
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
