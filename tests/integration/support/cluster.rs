//! Multi-member clusters for integration tests: N `etcd` processes (ours or
//! etcd 3.4) on free 127.0.0.1 ports, each in its own data dir under one
//! temp dir, bootstrapped with --initial-cluster; members are stopped by PID
//! (SIGKILL on drop), paused with SIGSTOP, restarted on the same ports, and
//! new members join with --initial-cluster-state existing.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::bail;

pub use crate::support::common::reference_etcd_available as reference_available;
pub use crate::support::common::Binary as Flavor;

pub use crate::support::member::Member;
pub use crate::support::ports::free_port;
pub use crate::support::proxy::{Link, PeerProxy};

pub struct Cluster {
    pub flavor: Flavor,
    /// Killed on drop, before `dir` goes (fields drop in order).
    pub members: Vec<Member>,
    pub dir: tempfile::TempDir,
    pub token: String,
    common: Vec<String>,
}

impl Cluster {
    /// Starts `n` members `m1..mn` and waits until each serves a
    /// linearizable read. `common` args go to every member.
    pub async fn start(flavor: Flavor, n: usize, common: &[&str]) -> anyhow::Result<Cluster> {
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        Self::start_on(flavor, &ports, common).await
    }

    /// As `start`, on given (client, peer) ports.
    pub async fn start_on(
        flavor: Flavor,
        ports: &[(u16, u16)],
        common: &[&str],
    ) -> anyhow::Result<Cluster> {
        Self::start_full(flavor, ports, &[], common, |_, _| ()).await
    }

    /// `n` members whose peer ports are TCP proxies the test controls:
    /// member i advertises proxy i, which forwards to its real peer port.
    /// Cutting proxy i stops all traffic *to* member i.
    pub async fn start_behind_proxies(
        flavor: Flavor,
        n: usize,
        common: &[&str],
    ) -> anyhow::Result<(Cluster, Vec<PeerProxy>)> {
        Self::start_behind_proxies_with(flavor, n, common, |_, _| ()).await
    }

    /// As `start_behind_proxies`; `customize` sets up member i (its
    /// binary, its environment) before it starts.
    pub async fn start_behind_proxies_with(
        flavor: Flavor,
        n: usize,
        common: &[&str],
        customize: impl Fn(usize, &mut Member),
    ) -> anyhow::Result<(Cluster, Vec<PeerProxy>)> {
        let mut ports = Vec::new();
        let mut listen = Vec::new();
        let mut proxies = Vec::new();
        for _ in 0..n {
            let real = free_port()?;
            let proxy = PeerProxy::start(real).await?;
            ports.push((free_port()?, proxy.port));
            listen.push(real);
            proxies.push(proxy);
        }
        let cluster = Self::start_full(flavor, &ports, &listen, common, customize).await?;
        Ok((cluster, proxies))
    }

    async fn start_full(
        flavor: Flavor,
        ports: &[(u16, u16)],
        listen_peer_ports: &[u16],
        common: &[&str],
        customize: impl Fn(usize, &mut Member),
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let token = "test-cluster".to_string();
        let mut members: Vec<Member> = ports
            .iter()
            .enumerate()
            .map(|(i, &(c, p))| {
                let name = format!("m{}", i + 1);
                let mut m = Member::new(&name, flavor, c, p, dir.path().join(&name));
                m.listen_peer_port = listen_peer_ports.get(i).copied();
                customize(i, &mut m);
                m
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let common: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        for m in &mut members {
            m.args = member_args(m, &initial.join(","), &token, "new", &common);
            m.start()?;
        }
        for m in &mut members {
            m.wait_serving(Duration::from_secs(30)).await?;
        }
        Ok(Cluster {
            flavor,
            dir,
            members,
            token,
            common,
        })
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the member every answering member agrees leads, waiting
    /// up to `timeout` (a paused member does not answer and is skipped).
    pub async fn leader(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.leader_of(&all, timeout).await
    }

    /// As `leader`, asking only the members in `among`.
    pub async fn leader_of(&mut self, among: &[usize], timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut answers = Vec::new();
            for (i, m) in self.members.iter_mut().enumerate() {
                if !among.contains(&i) || !m.is_running() {
                    continue;
                }
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), m.status()).await {
                    answers.push((i, s.header.map(|h| h.member_id).unwrap_or(0), s.leader));
                }
            }
            if let Some(&(_, _, leader)) = answers.first() {
                if leader != 0 && answers.iter().all(|a| a.2 == leader) {
                    if let Some(a) = answers.iter().find(|a| a.1 == leader) {
                        return Ok(a.0);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader after {timeout:?}: {answers:x?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a new member `name` that joins with --initial-cluster-state
    /// existing (it must have been added with MemberAdd first, on
    /// `peer_port`).
    pub fn join(&mut self, name: &str, client_port: u16, peer_port: u16) -> anyhow::Result<usize> {
        let mut m = Member::new(
            name,
            self.flavor,
            client_port,
            peer_port,
            self.dir.path().join(name),
        );
        let mut initial: Vec<String> = self
            .members
            .iter()
            .map(|x| format!("{}={}", x.name, x.peer_url()))
            .collect();
        initial.push(format!("{}={}", m.name, m.peer_url()));
        self.start_joining(&mut m, &initial)?;
        self.members.push(m);
        Ok(self.members.len() - 1)
    }

    /// Starts `m` with --initial-cluster `initial` and state existing.
    fn start_joining(&self, m: &mut Member, initial: &[String]) -> anyhow::Result<()> {
        m.args = member_args(m, &initial.join(","), &self.token, "existing", &self.common);
        m.start()
    }

    /// Puts a new member `name` in place of member `i` (removed from the
    /// cluster and stopped; the new one must have been added with
    /// MemberAdd on the same peer URL): same ports, a fresh data dir, and
    /// --initial-cluster-state existing.
    pub fn replace(&mut self, i: usize, name: &str) -> anyhow::Result<()> {
        let old = &self.members[i];
        // beside the old one's (which may be on a disk of the test's own)
        let parent = old.data_dir.parent().unwrap_or(self.dir.path());
        let mut m = Member::new(
            name,
            self.flavor,
            old.client_port,
            old.peer_port,
            parent.join(name),
        );
        m.listen_peer_port = old.listen_peer_port;
        m.binary = old.binary.clone();
        m.extra_env = old.extra_env.clone();
        m.log_dir = old.log_dir.clone();
        let initial: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .map(|(j, x)| match j == i {
                true => format!("{}={}", m.name, m.peer_url()),
                false => format!("{}={}", x.name, x.peer_url()),
            })
            .collect();
        self.start_joining(&mut m, &initial)?;
        self.members[i] = m;
        Ok(())
    }

    /// Starts a stopped member again with the same arguments.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].start()
    }
}

fn member_args(
    m: &Member,
    initial: &str,
    token: &str,
    state: &str,
    common: &[String],
) -> Vec<String> {
    let mut args = vec![
        format!("--name={}", m.name),
        format!("--data-dir={}", m.data_dir.display()),
        format!("--listen-client-urls={}", m.client_url()),
        format!("--advertise-client-urls={}", m.client_url()),
        format!(
            "--listen-peer-urls=http://127.0.0.1:{}",
            m.listen_peer_port.unwrap_or(m.peer_port)
        ),
        format!("--initial-advertise-peer-urls={}", m.peer_url()),
        format!("--initial-cluster={initial}"),
        format!("--initial-cluster-token={token}"),
        format!("--initial-cluster-state={state}"),
    ];
    args.extend(common.iter().cloned());
    args
}
