//! RBAC against a model of permissions (issue 23): a restricted user with
//! random roles and permissions sends random requests of every kind
//! through every service, and what it gets is checked against a model
//! written from the rules, not against etcd (which had the bugs this test
//! is for: GHSA-xg4h-6gfc-h4m8's "\0" watch, unchecked nested txns, a
//! txn's put prev_kv read without read permission).
//!
//! The model: a user may read (write) a key when one of its roles has a
//! READ or READWRITE (WRITE or READWRITE) permission whose interval holds
//! it: a single key, `[key, range_end)`, or `[key, +inf)` for a range end
//! of "\0". A request over a range needs all of it covered (the union of
//! the intervals, without a gap). What each request needs follows etcd
//! 3.5's checks (with the fixes named above). A range whose end is at or
//! below its key is degenerate: etcd's answer depends on the shape of its
//! interval tree, so either answer is accepted, but it must not leak.
//!
//! Checked for every request:
//! - safety: every key, value and event the user receives is one it may
//!   read (a watch's events also lie in its range and pass its filters),
//!   and every key whose state changed (root lists them all before and
//!   after) is one it may write; a refused request changes nothing;
//! - liveness and errors: what the model allows succeeds; what it forbids
//!   is refused with etcd's code and message.
//!
//! AUTH_MODEL_CASES sets the number of permission sets (50 by default, each
//! with AUTH_MODEL_REQUESTS = 40 requests plus a watch stream and admin
//! calls), AUTH_MODEL_SEED the seed (printed on failure).

use crate::support::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ServerOptions, TestServer};
use rsetcd::proto::authpb::{permission::Type as PermType, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::mvccpb::{event::EventType, KeyValue};
use rsetcd::proto::v3electionpb::election_client::ElectionClient;
use rsetcd::proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use rsetcd::proto::v3lockpb::lock_client::LockClient;
use rsetcd::proto::v3lockpb::{LockRequest, UnlockRequest};
use tonic::transport::Channel;

/// The key space: short keys around each other's edges ("a" < "a\0" <
/// "aa" < … < "b" …), so prefixes, points and ranges overlap in every way.
const KEYS: &[&[u8]] = &[
    b"a", b"a\0", b"aa", b"ab", b"ac", b"a\xff", b"b", b"ba", b"bb", b"bc", b"b0", b"c", b"ca",
    b"cb", b"d", b"\xff",
];

/// The message etcd gives a refused KV, lease, watch or membership request.
const DENIED: &str = "PermissionDenied: etcdserver: permission denied";
/// Maintenance passes the auth store's error through unconverted (gRPC
/// code Unknown), as etcd's authMaintenanceServer does.
const DENIED_MAINTENANCE: &str = "Unknown: auth: permission denied";
/// The lock and election services answer as etcd's v3lock/v3election,
/// whose errors come back from a client call (code Unknown).
const DENIED_CONCURRENCY: &str = "Unknown: etcdserver: permission denied";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn flag(&mut self) -> bool {
        self.below(2) == 0
    }
    fn key(&mut self) -> Vec<u8> {
        KEYS[self.below(KEYS.len())].to_vec()
    }
    /// A range end: none (one key), "\0" (to the end), the prefix end, or
    /// any key (also one at or below `key`: a degenerate range).
    fn end(&mut self, key: &[u8]) -> Vec<u8> {
        match self.below(5) {
            0 | 1 => Vec::new(),
            2 => vec![0],
            3 => prefix_end(key),
            _ => self.key(),
        }
    }
}

fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `[begin, end)`; `end == None` is +infinity.
#[derive(Debug, Clone)]
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    /// What a key and range end name in a request or a permission.
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = match range_end {
            [] => Some([key, &[0]].concat()),
            [0] => None,
            e => Some(e.to_vec()),
        };
        Interval {
            begin: key.to_vec(),
            end,
        }
    }
    fn holds(&self, key: &[u8]) -> bool {
        self.begin.as_slice() <= key && self.end.as_ref().is_none_or(|e| key < e.as_slice())
    }
}

/// A range end at or below its key (not "\0"): the range is empty, and
/// etcd's permission answer for it depends on its tree's shape.
fn degenerate(key: &[u8], range_end: &[u8]) -> bool {
    !range_end.is_empty() && range_end != [0] && range_end <= key
}

/// What the model says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
    Either,
}

impl Verdict {
    fn and(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Deny, _) | (_, Deny) => Deny,
            (Allow, Allow) => Allow,
            _ => Either,
        }
    }
    fn all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Allow, Verdict::and)
    }
}

/// The user's permissions, as intervals per access.
#[derive(Debug, Default, Clone)]
struct Model {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

impl Model {
    fn grant(&mut self, p: &Permission) {
        let ivl = Interval::of(&p.key, &p.range_end);
        if p.perm_type != PermType::Write as i32 {
            self.read.push(ivl.clone());
        }
        if p.perm_type != PermType::Read as i32 {
            self.write.push(ivl);
        }
    }

    /// Whether the union of `ivls` covers `[begin, end)` without a gap.
    fn covers(ivls: &[Interval], target: &Interval) -> bool {
        let mut at = target.begin.clone();
        loop {
            if let Some(end) = &target.end {
                if at >= *end {
                    return true;
                }
            }
            // the furthest end among the intervals holding `at`
            let mut furthest: Option<Option<Vec<u8>>> = None;
            for i in ivls.iter().filter(|i| i.holds(&at)) {
                furthest = match (furthest, &i.end) {
                    (_, None) | (Some(None), _) => Some(None),
                    (None, Some(e)) => Some(Some(e.clone())),
                    (Some(Some(f)), Some(e)) => Some(Some(f.max(e.clone()))),
                };
            }
            match furthest {
                None => return false,
                Some(None) => return true,
                Some(Some(e)) => at = e,
            }
        }
    }

    fn check(ivls: &[Interval], key: &[u8], range_end: &[u8]) -> Verdict {
        if degenerate(key, range_end) {
            Verdict::Either
        } else if Model::covers(ivls, &Interval::of(key, range_end)) {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }
    fn read(&self, key: &[u8], range_end: &[u8]) -> Verdict {
        Model::check(&self.read, key, range_end)
    }
    fn write(&self, key: &[u8], range_end: &[u8]) -> Verdict {
        Model::check(&self.write, key, range_end)
    }
    fn may_read(&self, key: &[u8]) -> bool {
        self.read(key, &[]) == Verdict::Allow
    }
    fn may_write(&self, key: &[u8]) -> bool {
        self.write(key, &[]) == Verdict::Allow
    }

    fn range(&self, r: &RangeRequest) -> Verdict {
        self.read(&r.key, &r.range_end)
    }
    fn put(&self, p: &PutRequest, lease_keys: &[Vec<u8>]) -> Verdict {
        let mut v = self.write(&p.key, &[]);
        if p.prev_kv {
            v = v.and(self.read(&p.key, &[]));
        }
        Verdict::all(lease_keys.iter().map(|k| self.write(k, &[]))).and(v)
    }
    fn delete(&self, d: &DeleteRangeRequest) -> Verdict {
        let mut v = self.write(&d.key, &d.range_end);
        if d.prev_kv {
            v = v.and(self.read(&d.key, &d.range_end));
        }
        v
    }
    /// Every compare read; every op of both branches, nested ones too.
    /// (A put inside a txn is not checked against its lease's keys, as in
    /// etcd; the generator attaches no leases inside txns.)
    fn txn(&self, t: &TxnRequest) -> Verdict {
        let compares = Verdict::all(t.compare.iter().map(|c| self.read(&c.key, &c.range_end)));
        let ops = t
            .success
            .iter()
            .chain(&t.failure)
            .map(|op| match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.range(r),
                Some(request_op::Request::RequestPut(p)) => self.put(p, &[]),
                Some(request_op::Request::RequestDeleteRange(d)) => self.delete(d),
                Some(request_op::Request::RequestTxn(t)) => self.txn(t),
                None => Verdict::Allow,
            });
        compares.and(Verdict::all(ops))
    }
    /// A lock or campaign under `name`: its key read and written, every
    /// key under the prefix read.
    fn contender(&self, prefix: &[u8], key: Option<&[u8]>) -> Verdict {
        let mut v = self.read(prefix, &prefix_end(prefix));
        if let Some(key) = key {
            v = v.and(self.read(key, &[])).and(self.write(key, &[]));
        }
        v
    }
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("token", token.parse().expect("token is ascii"));
    r.set_timeout(Duration::from_secs(10));
    r
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// The key space as root sees it: key → (mod revision, lease).
type State = BTreeMap<Vec<u8>, (i64, i64)>;

struct World {
    channel: Channel,
    root: String,
    model: Model,
    /// The user's token for this case.
    token: String,
    /// The user's own lease (for locks and campaigns).
    user_lease: i64,
    /// A lease root granted with one key of the case on it.
    root_lease: i64,
    /// What each request was, for a failure's message.
    trail: Vec<String>,
}

impl World {
    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }
    fn auth(&self) -> AuthClient<Channel> {
        AuthClient::new(self.channel.clone())
    }
    fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    async fn state(&self) -> State {
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        let resp = self
            .kv()
            .range(with_token(all, &self.root))
            .await
            .expect("root lists the key space")
            .into_inner();
        resp.kvs
            .into_iter()
            .map(|kv| (kv.key, (kv.mod_revision, kv.lease)))
            .collect()
    }

    async fn revision(&self) -> i64 {
        let r = RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        };
        let resp = self.kv().range(with_token(r, &self.root)).await;
        resp.expect("root reads")
            .into_inner()
            .header
            .expect("header")
            .revision
    }

    async fn lease_keys(&self, id: i64) -> Vec<Vec<u8>> {
        if id == 0 {
            return Vec::new();
        }
        let r = LeaseTimeToLiveRequest { id, keys: true };
        match self
            .lease()
            .lease_time_to_live(with_token(r, &self.root))
            .await
        {
            Ok(r) => r.into_inner().keys,
            Err(_) => Vec::new(),
        }
    }

    fn fail(&self, what: &str) -> ! {
        let tail: Vec<&String> = self.trail.iter().rev().take(5).collect();
        panic!(
            "{what}\n  permissions: {:?}\n  last requests (newest first): {tail:#?}",
            self.model
        );
    }

    fn see_kvs<'a>(&self, kvs: impl IntoIterator<Item = &'a KeyValue>) {
        for kv in kvs {
            if !self.model.may_read(&kv.key) {
                self.fail(&format!("leaked key {:?}", kv.key));
            }
        }
    }

    fn see_range_response(&self, r: &RangeResponse, req: &RangeRequest) {
        self.see_kvs(&r.kvs);
        if degenerate(&req.key, &req.range_end) && (r.count != 0 || !r.kvs.is_empty()) {
            self.fail("an empty range answered keys");
        }
    }

    fn see_txn_response(&self, t: &TxnResponse) {
        for r in &t.responses {
            match &r.response {
                Some(response_op::Response::ResponseRange(r)) => self.see_kvs(&r.kvs),
                Some(response_op::Response::ResponsePut(p)) => self.see_kvs(&p.prev_kv),
                Some(response_op::Response::ResponseDeleteRange(d)) => self.see_kvs(&d.prev_kvs),
                Some(response_op::Response::ResponseTxn(t)) => self.see_txn_response(t),
                None => {}
            }
        }
    }

    /// Holds `verdict` against `answer`: an allowed request succeeds, a
    /// forbidden one is refused with `denied`. Returns whether it succeeded.
    fn judge<T>(&self, verdict: Verdict, answer: &Result<T, tonic::Status>, denied: &str) -> bool {
        match (verdict, answer) {
            (Verdict::Deny, Ok(_)) => self.fail("a forbidden request succeeded"),
            (Verdict::Allow, Err(s)) => {
                self.fail(&format!("an allowed request failed: {}", status_text(s)))
            }
            (_, Err(s)) if status_text(s) != denied => {
                self.fail(&format!("refused as {:?}, not {denied:?}", status_text(s)))
            }
            (_, answer) => answer.is_ok(),
        }
    }

    /// Changes between two lists of the key space must all be writable;
    /// a refused request changes nothing.
    fn see_changes(&self, before: &State, after: &State, succeeded: bool) {
        let keys = before.keys().chain(after.keys());
        for key in keys {
            if before.get(key) != after.get(key) {
                if !succeeded {
                    self.fail(&format!("a refused request changed {key:?}"));
                }
                if !self.model.may_write(key) {
                    self.fail(&format!("changed {key:?} without write permission"));
                }
            }
        }
    }
}

/// A random permission set: one or two roles with one to four
/// permissions each. Returns the model and the granted permissions.
fn random_permissions(rng: &mut Rng) -> Vec<Vec<Permission>> {
    let types = [PermType::Read, PermType::Write, PermType::Readwrite];
    (0..1 + rng.below(2))
        .map(|_| {
            (0..1 + rng.below(4))
                .map(|_| {
                    let key = rng.key();
                    Permission {
                        perm_type: types[rng.below(3)] as i32,
                        range_end: rng.end(&key),
                        key,
                    }
                })
                .collect()
        })
        .collect()
}

fn random_txn(rng: &mut Rng, depth: usize) -> TxnRequest {
    let ops = |rng: &mut Rng| -> Vec<RequestOp> {
        (0..rng.below(3))
            .map(|_| {
                let key = rng.key();
                let request = match rng.below(if depth < 2 { 4 } else { 3 }) {
                    0 => request_op::Request::RequestRange(RangeRequest {
                        range_end: rng.end(&key),
                        key,
                        keys_only: rng.flag(),
                        ..Default::default()
                    }),
                    1 => request_op::Request::RequestPut(PutRequest {
                        key,
                        value: b"txn".to_vec(),
                        prev_kv: rng.flag(),
                        ..Default::default()
                    }),
                    2 => request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                        range_end: rng.end(&key),
                        key,
                        prev_kv: rng.flag(),
                    }),
                    _ => request_op::Request::RequestTxn(random_txn(rng, depth + 1)),
                };
                RequestOp {
                    request: Some(request),
                }
            })
            .collect()
    };
    let compare = (0..rng.below(3))
        .map(|_| {
            let key = rng.key();
            let (target, union) = match rng.below(4) {
                0 => (
                    compare::CompareTarget::Value,
                    compare::TargetUnion::Value(b"v".to_vec()),
                ),
                1 => (
                    compare::CompareTarget::Mod,
                    compare::TargetUnion::ModRevision(0),
                ),
                2 => (
                    compare::CompareTarget::Version,
                    compare::TargetUnion::Version(1),
                ),
                _ => (
                    compare::CompareTarget::Create,
                    compare::TargetUnion::CreateRevision(0),
                ),
            };
            Compare {
                range_end: if rng.below(3) == 0 {
                    rng.end(&key)
                } else {
                    Vec::new()
                },
                key,
                result: rng.below(4) as i32,
                target: target as i32,
                target_union: Some(union),
            }
        })
        .collect();
    TxnRequest {
        compare,
        success: ops(rng),
        failure: ops(rng),
    }
}

/// Whether two writes of a txn (any branch, nested too) may overlap: a
/// superset of what etcd refuses as "duplicate key given in txn request".
fn may_overlap(t: &TxnRequest) -> bool {
    fn collect(t: &TxnRequest, puts: &mut Vec<Vec<u8>>, deletes: &mut Vec<Interval>) {
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(request_op::Request::RequestPut(p)) => puts.push(p.key.clone()),
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    let end = if degenerate(&d.key, &d.range_end) {
                        &[][..]
                    } else {
                        &d.range_end[..]
                    };
                    deletes.push(Interval::of(&d.key, end));
                }
                Some(request_op::Request::RequestTxn(t)) => collect(t, puts, deletes),
                _ => {}
            }
        }
    }
    let (mut puts, mut deletes) = (Vec::new(), Vec::new());
    collect(t, &mut puts, &mut deletes);
    let repeated = puts.iter().enumerate().any(|(i, k)| puts[..i].contains(k));
    repeated || puts.iter().any(|k| deletes.iter().any(|d| d.holds(k)))
}

/// One random KV, lease, lock or election request as the user, judged.
async fn one_request(w: &mut World, rng: &mut Rng) {
    if w.root_lease == 0 {
        w.root_lease = grant_root_lease(w, rng.key()).await;
    }
    let key = rng.key();
    let before = w.state().await;
    let succeeded = match rng.below(10) {
        0 | 1 => {
            let r = RangeRequest {
                range_end: rng.end(&key),
                key,
                limit: [0, 0, 1, 2][rng.below(4)],
                serializable: rng.flag(),
                keys_only: rng.flag(),
                count_only: rng.below(4) == 0,
                sort_order: rng.below(3) as i32,
                ..Default::default()
            };
            w.trail.push(format!("{r:?}"));
            let answer = w.kv().range(with_token(r.clone(), &w.token)).await;
            if let Ok(resp) = &answer {
                w.see_range_response(resp.get_ref(), &r);
            }
            w.judge(w.model.range(&r), &answer, DENIED)
        }
        2 | 3 => {
            // sometimes onto root's lease, which carries a key already
            let lease = if rng.below(4) == 0 { w.root_lease } else { 0 };
            let r = PutRequest {
                key,
                value: b"u".to_vec(),
                prev_kv: rng.flag(),
                lease,
                ..Default::default()
            };
            let lease_keys = w.lease_keys(lease).await;
            w.trail.push(format!("{r:?} (lease keys {lease_keys:?})"));
            let answer = w.kv().put(with_token(r.clone(), &w.token)).await;
            if let Ok(resp) = &answer {
                w.see_kvs(&resp.get_ref().prev_kv);
            }
            w.judge(w.model.put(&r, &lease_keys), &answer, DENIED)
        }
        4 => {
            let r = DeleteRangeRequest {
                range_end: rng.end(&key),
                key,
                prev_kv: rng.flag(),
            };
            w.trail.push(format!("{r:?}"));
            let answer = w.kv().delete_range(with_token(r.clone(), &w.token)).await;
            if let Ok(resp) = &answer {
                w.see_kvs(&resp.get_ref().prev_kvs);
            }
            w.judge(w.model.delete(&r), &answer, DENIED)
        }
        5 | 6 => {
            let t = random_txn(rng, 0);
            w.trail.push(format!("{t:?}"));
            let answer = w.kv().txn(with_token(t.clone(), &w.token)).await;
            if let Ok(resp) = &answer {
                w.see_txn_response(resp.get_ref());
            }
            // etcd validates a txn before it checks permissions
            let duplicate = "InvalidArgument: etcdserver: duplicate key given in txn request";
            match &answer {
                Err(s) if status_text(s) == duplicate => {
                    if !may_overlap(&t) {
                        w.fail("refused as duplicate without overlapping writes");
                    }
                    false
                }
                _ => w.judge(w.model.txn(&t), &answer, DENIED),
            }
        }
        7 => lease_request(w, rng).await,
        8 => lock(w, &key).await,
        _ => campaign(w, &key).await,
    };
    let after = w.state().await;
    w.see_changes(&before, &after, succeeded);
}

async fn lease_request(w: &mut World, rng: &mut Rng) -> bool {
    let keys = w.lease_keys(w.root_lease).await;
    match rng.below(3) {
        0 => {
            let r = LeaseTimeToLiveRequest {
                id: w.root_lease,
                keys: rng.flag(),
            };
            w.trail.push(format!("{r:?} (lease keys {keys:?})"));
            let answer = w.lease().lease_time_to_live(with_token(r, &w.token)).await;
            if let Ok(resp) = &answer {
                for k in &resp.get_ref().keys {
                    if !w.model.may_read(k) {
                        w.fail(&format!("time-to-live leaked key {k:?}"));
                    }
                }
            }
            // etcd 3.5 checks the keys only when they are asked for
            let verdict = if r.keys {
                Verdict::all(keys.iter().map(|k| w.model.read(k, &[])))
            } else {
                Verdict::Allow
            };
            w.judge(verdict, &answer, DENIED)
        }
        1 => {
            w.trail.push("LeaseLeases".into());
            let answer = w
                .lease()
                .lease_leases(with_token(LeaseLeasesRequest {}, &w.token))
                .await;
            // lease ids only, as etcd: no keys to leak
            w.judge(Verdict::Allow, &answer, DENIED)
        }
        _ => {
            let r = LeaseRevokeRequest { id: w.root_lease };
            w.trail.push(format!("{r:?} (lease keys {keys:?})"));
            let answer = w.lease().lease_revoke(with_token(r, &w.token)).await;
            let verdict = Verdict::all(keys.iter().map(|k| w.model.write(k, &[])));
            let revoked = w.judge(verdict, &answer, DENIED);
            if revoked {
                w.root_lease = 0; // granted again before the next request
            }
            revoked
        }
    }
}

/// Lock under `name` with the user's lease, then unlock.
async fn lock(w: &mut World, name: &[u8]) -> bool {
    let prefix = [name, b"/"].concat();
    let key = [prefix.as_slice(), format!("{:x}", w.user_lease).as_bytes()].concat();
    let r = LockRequest {
        name: name.to_vec(),
        lease: w.user_lease,
    };
    w.trail.push(format!("{r:?}"));
    let mut client = LockClient::new(w.channel.clone());
    let answer = client.lock(with_token(r, &w.token)).await;
    if let Ok(resp) = &answer {
        if resp.get_ref().key != key {
            w.fail(&format!("lock key {:?}, not {key:?}", resp.get_ref().key));
        }
    }
    let locked = w.judge(
        w.model.contender(&prefix, Some(&key)),
        &answer,
        DENIED_CONCURRENCY,
    );
    if locked {
        let unlock = UnlockRequest { key };
        let answer = client.unlock(with_token(unlock, &w.token)).await;
        w.judge(Verdict::Allow, &answer, DENIED_CONCURRENCY);
    }
    locked
}

/// Campaign under `name` with the user's lease, ask for the leader,
/// proclaim, resign.
async fn campaign(w: &mut World, name: &[u8]) -> bool {
    let prefix = [name, b"/"].concat();
    let key = [prefix.as_slice(), format!("{:x}", w.user_lease).as_bytes()].concat();
    let mut client = ElectionClient::new(w.channel.clone());
    let r = LeaderRequest {
        name: name.to_vec(),
    };
    w.trail.push(format!("{r:?}"));
    let answer = client.leader(with_token(r, &w.token)).await;
    // no leader yet: etcd's "election: no leader" is an answer too
    let verdict = w.model.contender(&prefix, None);
    let no_leader = matches!(&answer, Err(s) if s.message() == "election: no leader");
    if let Ok(resp) = &answer {
        w.see_kvs(&resp.get_ref().kv);
    }
    if no_leader && verdict == Verdict::Deny {
        w.fail("a forbidden leader request was answered \"no leader\"");
    } else if !no_leader {
        w.judge(verdict, &answer, DENIED_CONCURRENCY);
    }
    let r = CampaignRequest {
        name: name.to_vec(),
        lease: w.user_lease,
        value: b"me".to_vec(),
    };
    w.trail.push(format!("{r:?}"));
    let answer = client.campaign(with_token(r, &w.token)).await;
    let verdict = w.model.contender(&prefix, Some(&key));
    let leader = match &answer {
        Ok(resp) => resp.get_ref().leader.clone(),
        Err(_) => None,
    };
    let elected = w.judge(verdict, &answer, DENIED_CONCURRENCY);
    if let Some(leader) = leader {
        if leader.key != key {
            w.fail(&format!("campaign key {:?}, not {key:?}", leader.key));
        }
        let proclaim = ProclaimRequest {
            leader: Some(leader.clone()),
            value: b"again".to_vec(),
        };
        let answer = client.proclaim(with_token(proclaim, &w.token)).await;
        w.judge(Verdict::Allow, &answer, DENIED_CONCURRENCY);
        let resign = ResignRequest {
            leader: Some(leader),
        };
        let answer = client.resign(with_token(resign, &w.token)).await;
        w.judge(Verdict::Allow, &answer, DENIED_CONCURRENCY);
    }
    // someone else's leader key: proclaim and resign need it readable and
    // writable (its create revision is compared, then it is written)
    let other = LeaderKey {
        name: name.to_vec(),
        key: [prefix.as_slice(), b"7"].concat(),
        rev: 1,
        lease: 7,
    };
    let verdict = w.model.contender(&prefix, Some(&other.key));
    let resign = ResignRequest {
        leader: Some(other.clone()),
    };
    w.trail.push(format!("{resign:?}"));
    let answer = client.resign(with_token(resign, &w.token)).await;
    // allowed, it finds nothing to resign (etcd answers that as success)
    w.judge(verdict, &answer, DENIED_CONCURRENCY);
    elected
}

/// Watches as the user on one stream, created after the case's writes
/// from `start` (replaying them), drained up to a progress answer (sent
/// once every watcher has caught up).
async fn watches(w: &mut World, rng: &mut Rng, start: i64) {
    // from the first revision while the history is short
    let early = if start < 5000 { 1 } else { start - 2000 };
    let creates: Vec<WatchCreateRequest> = (0..1 + rng.below(6))
        .map(|_| {
            let key = rng.key();
            let filters = match rng.below(4) {
                0 => vec![0],
                1 => vec![1],
                _ => Vec::new(),
            };
            WatchCreateRequest {
                range_end: rng.end(&key),
                key,
                start_revision: [start, start, early, 0][rng.below(4)],
                progress_notify: rng.flag(),
                filters,
                prev_kv: rng.flag(),
                fragment: rng.flag(),
                ..Default::default()
            }
        })
        .collect();
    w.trail.push(format!("watches {creates:#?}"));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for c in &creates {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(c.clone())),
        };
        tx.send(create).await.expect("queue create");
    }
    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    };
    tx.send(progress).await.expect("queue progress");
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut client = WatchClient::new(w.channel.clone());
    let mut answers = client
        .watch(with_token(stream, &w.token))
        .await
        .expect("watch stream opens")
        .into_inner();
    // id → the create it answered
    let mut created: BTreeMap<i64, WatchCreateRequest> = BTreeMap::new();
    let mut answered = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), answers.message()).await;
        let resp = match next {
            Ok(Ok(Some(resp))) => resp,
            other => w.fail(&format!("watch stream ended early: {other:?}")),
        };
        if resp.created {
            let c = &creates[answered];
            answered += 1;
            let verdict = w.model.read(&c.key, &c.range_end);
            if resp.canceled {
                if verdict == Verdict::Allow {
                    w.fail(&format!("allowed watch refused: {}", resp.cancel_reason));
                }
                let reason =
                    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";
                // past the permission check, an empty range is refused
                let empty = degenerate(&c.key, &c.range_end)
                    && resp.cancel_reason == "mvcc: watcher range is empty";
                if resp.cancel_reason != reason && !empty {
                    w.fail(&format!("watch refused as {:?}", resp.cancel_reason));
                }
            } else {
                if verdict == Verdict::Deny {
                    w.fail("forbidden watch created");
                }
                created.insert(resp.watch_id, c.clone());
            }
            continue;
        }
        if resp.watch_id == -1 && resp.events.is_empty() && answered == creates.len() {
            break; // the progress answer: every watcher has caught up
        }
        let Some(c) = created.get(&resp.watch_id) else {
            w.fail(&format!("events for unknown watch {}", resp.watch_id));
        };
        let range = Interval::of(&c.key, &c.range_end);
        for e in &resp.events {
            let kv = e.kv.as_ref().expect("event kv");
            if !w.model.may_read(&kv.key) {
                w.fail(&format!("watch leaked an event on {:?}", kv.key));
            }
            if degenerate(&c.key, &c.range_end) || !range.holds(&kv.key) {
                w.fail(&format!("watch {c:?} sent an event on {:?}", kv.key));
            }
            let put = e.r#type == EventType::Put as i32;
            if (put && c.filters.contains(&0)) || (!put && c.filters.contains(&1)) {
                w.fail("a filtered event was sent");
            }
            w.see_kvs(&e.prev_kv);
        }
    }
}

/// Administrative calls: every one but the few etcd leaves open is
/// refused, and none of them changes anything.
async fn admin_calls(w: &mut World, rng: &mut Rng, user: &str, own_role: &str) {
    let t = w.token.clone();
    let channel = w.channel.clone();
    let auth = || AuthClient::new(channel.clone());
    let maint = || MaintenanceClient::new(channel.clone());
    let cluster = || ClusterClient::new(channel.clone());
    let before = w.state().await;
    for _ in 0..3 {
        let which = rng.below(22);
        w.trail.push(format!("admin call {which}"));
        let (verdict, answer, denied): (Verdict, Result<(), tonic::Status>, &str) = match which {
            0 => (
                Verdict::Deny,
                auth()
                    .user_grant_role(with_token(
                        AuthUserGrantRoleRequest {
                            user: user.into(),
                            role: "root".into(),
                        },
                        &t,
                    ))
                    .await
                    .map(drop),
                DENIED,
            ),
            1 => {
                let perm = Permission {
                    perm_type: PermType::Readwrite as i32,
                    key: vec![0],
                    range_end: vec![0],
                };
                let r = AuthRoleGrantPermissionRequest {
                    name: own_role.into(),
                    perm: Some(perm),
                };
                let answer = auth().role_grant_permission(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            2 => {
                let r = AuthUserAddRequest {
                    name: "intruder".into(),
                    password: "x".into(),
                    ..Default::default()
                };
                let answer = auth().user_add(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            3 => {
                let r = AuthUserChangePasswordRequest {
                    name: "root".into(),
                    password: "mine".into(),
                };
                let answer = auth().user_change_password(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            4 => {
                let answer = auth()
                    .auth_disable(with_token(AuthDisableRequest {}, &t))
                    .await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            5 => {
                let answer = auth()
                    .user_list(with_token(AuthUserListRequest {}, &t))
                    .await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            6 => {
                let r = AuthUserGetRequest { name: user.into() };
                let answer = auth().user_get(with_token(r, &t)).await;
                (Verdict::Allow, answer.map(drop), DENIED)
            }
            7 => {
                let r = AuthUserGetRequest {
                    name: "root".into(),
                };
                let answer = auth().user_get(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            8 => {
                let r = AuthRoleGetRequest {
                    role: own_role.into(),
                };
                let answer = auth().role_get(with_token(r, &t)).await;
                (Verdict::Allow, answer.map(drop), DENIED)
            }
            9 => {
                let r = AuthRoleGetRequest {
                    role: "root".into(),
                };
                let answer = auth().role_get(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            10 => {
                let answer = auth()
                    .auth_status(with_token(AuthStatusRequest {}, &t))
                    .await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            11 => {
                let r = CompactionRequest {
                    revision: 2,
                    physical: false,
                };
                let answer = w.kv().compact(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            12 => {
                let r = AlarmRequest {
                    action: alarm_request::AlarmAction::Activate as i32,
                    member_id: 0,
                    alarm: AlarmType::Nospace as i32,
                };
                let answer = maint().alarm(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            13 => {
                let r = AlarmRequest {
                    action: alarm_request::AlarmAction::Get as i32,
                    ..Default::default()
                };
                let answer = maint().alarm(with_token(r, &t)).await;
                (Verdict::Allow, answer.map(drop), DENIED)
            }
            14 => {
                let answer = maint().status(with_token(StatusRequest {}, &t)).await;
                (Verdict::Allow, answer.map(drop), DENIED)
            }
            15 => {
                let answer = maint()
                    .hash_kv(with_token(HashKvRequest { revision: 0 }, &t))
                    .await;
                (Verdict::Deny, answer.map(drop), DENIED_MAINTENANCE)
            }
            16 => {
                let answer = maint().hash(with_token(HashRequest {}, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED_MAINTENANCE)
            }
            17 => {
                let answer = maint()
                    .defragment(with_token(DefragmentRequest {}, &t))
                    .await;
                (Verdict::Deny, answer.map(drop), DENIED_MAINTENANCE)
            }
            18 => {
                // the refusal may come as the stream's first message
                let answer = match maint().snapshot(with_token(SnapshotRequest {}, &t)).await {
                    Ok(stream) => {
                        let mut stream = stream.into_inner();
                        match stream.message().await {
                            Ok(Some(chunk)) if !chunk.blob.is_empty() => {
                                w.fail("a snapshot was streamed to a non-root user")
                            }
                            Ok(_) => Ok(()),
                            Err(s) => Err(s),
                        }
                    }
                    Err(s) => Err(s),
                };
                (Verdict::Deny, answer, DENIED_MAINTENANCE)
            }
            19 => {
                let answer = cluster()
                    .member_list(with_token(MemberListRequest::default(), &t))
                    .await;
                (Verdict::Allow, answer.map(drop), DENIED)
            }
            20 => {
                let r = MemberAddRequest {
                    peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                    is_learner: true,
                };
                let answer = cluster().member_add(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
            _ => {
                let r = MemberRemoveRequest { id: 1 };
                let answer = cluster().member_remove(with_token(r, &t)).await;
                (Verdict::Deny, answer.map(drop), DENIED)
            }
        };
        w.judge(verdict, &answer, denied);
    }
    let after = w.state().await;
    w.see_changes(&before, &after, false);
}

async fn grant_root_lease(w: &World, key: Vec<u8>) -> i64 {
    let grant = LeaseGrantRequest { ttl: 3600, id: 0 };
    let id = w
        .lease()
        .lease_grant(with_token(grant, &w.root))
        .await
        .expect("root grants")
        .into_inner()
        .id;
    let put = PutRequest {
        key,
        value: b"leased".to_vec(),
        lease: id,
        ..Default::default()
    };
    w.kv()
        .put(with_token(put, &w.root))
        .await
        .expect("root puts");
    id
}

async fn token(channel: &Channel, name: &str, password: &str) -> String {
    let r = AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    AuthClient::new(channel.clone())
        .authenticate(r)
        .await
        .expect("authenticate")
        .into_inner()
        .token
}

/// One case: a fresh user with fresh roles, the key space written again
/// by root, then the requests, the watches and the admin calls.
async fn one_case(w: &mut World, rng: &mut Rng, case: usize, requests: usize) {
    let user = format!("u{case}");
    let roles = random_permissions(rng);
    let mut auth = w.auth();
    let root = w.root.clone();
    w.model = Model::default();
    auth.user_add(with_token(
        AuthUserAddRequest {
            name: user.clone(),
            password: "pw".into(),
            ..Default::default()
        },
        &root,
    ))
    .await
    .expect("add user");
    for (i, perms) in roles.iter().enumerate() {
        let role = format!("r{case}-{i}");
        auth.role_add(with_token(AuthRoleAddRequest { name: role.clone() }, &root))
            .await
            .expect("add role");
        for perm in perms {
            let grant = AuthRoleGrantPermissionRequest {
                name: role.clone(),
                perm: Some(perm.clone()),
            };
            // etcd refuses some degenerate permissions (they grant nothing)
            let _ = auth.role_grant_permission(with_token(grant, &root)).await;
        }
        // The model takes the role's permissions as root reads them back: a
        // grant on a key and range end the role has may update the one it
        // has (etcd's "granted/updated", which only finds the first
        // permission with that key); which one is the admin's business, what
        // the permissions allow is this test's.
        let get = AuthRoleGetRequest { role: role.clone() };
        let stored = auth
            .role_get(with_token(get, &root))
            .await
            .expect("root reads the role")
            .into_inner()
            .perm;
        for perm in &stored {
            if !perms
                .iter()
                .any(|p| p.key == perm.key && p.range_end == perm.range_end)
            {
                w.fail(&format!("role {role} holds {perm:?}, never granted"));
            }
            w.model.grant(perm);
        }
        let grant = AuthUserGrantRoleRequest {
            user: user.clone(),
            role,
        };
        auth.user_grant_role(with_token(grant, &root))
            .await
            .expect("grant role");
    }
    for k in KEYS {
        let put = PutRequest {
            key: k.to_vec(),
            value: [b"v:", *k].concat(),
            ..Default::default()
        };
        w.kv()
            .put(with_token(put, &root))
            .await
            .expect("root seeds");
    }
    w.token = token(&w.channel, &user, "pw").await;
    w.root_lease = grant_root_lease(w, rng.key()).await;
    let grant = LeaseGrantRequest { ttl: 3600, id: 0 };
    w.user_lease = w
        .lease()
        .lease_grant(with_token(grant, &w.token))
        .await
        .expect("a user may grant a lease")
        .into_inner()
        .id;
    w.trail.clear();
    w.trail.push(format!("case {case}: roles {roles:?}"));
    let start = w.revision().await;
    for _ in 0..requests {
        one_request(w, rng).await;
    }
    watches(w, rng, start).await;
    admin_calls(w, rng, &user, &format!("r{case}-0")).await;
    // the roles are as root made them (no escalation went through)
    for (i, perms) in roles.iter().enumerate() {
        let get = AuthRoleGetRequest {
            role: format!("r{case}-{i}"),
        };
        let got = auth
            .role_get(with_token(get, &root))
            .await
            .expect("root reads a role")
            .into_inner()
            .perm;
        if got.len() > perms.len() {
            w.fail(&format!("role r{case}-{i} gained permissions: {got:?}"));
        }
    }
}

#[test]
fn a_restricted_user_never_sees_or_changes_what_its_roles_do_not_allow() {
    let cases = std::env::var("AUTH_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let requests = std::env::var("AUTH_MODEL_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("AUTH_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1207);
    let opts = ServerOptions {
        extra_args: vec!["--bcrypt-cost=4".into()],
        ..ServerOptions::default()
    };
    let server = TestServer::start_ours(&opts).expect("start ours");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let channel = Channel::from_shared(server.client_url.clone())
                .expect("url")
                .connect()
                .await
                .expect("connect");
            let mut auth = AuthClient::new(channel.clone());
            let root = AuthUserAddRequest {
                name: "root".into(),
                password: "rootpw".into(),
                ..Default::default()
            };
            auth.user_add(root).await.expect("add root");
            let grant = AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            };
            auth.user_grant_role(grant).await.expect("grant root");
            auth.auth_enable(AuthEnableRequest {})
                .await
                .expect("enable");
            let root = token(&channel, "root", "rootpw").await;
            let mut world = World {
                channel,
                root,
                model: Model::default(),
                token: String::new(),
                user_lease: 0,
                root_lease: 0,
                trail: Vec::new(),
            };
            let mut rng = Rng(seed | 1);
            for case in 0..cases {
                one_case(&mut world, &mut rng, case, requests).await;
            }
        })
    }));
    if let Err(panic) = outcome {
        eprintln!("seed {seed}; server log tail:\n{}", tail(&server.log()));
        std::panic::resume_unwind(panic);
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn the_model_covers_ranges_as_the_rules_say() {
    let mut m = Model::default();
    let p = |t: PermType, k: &[u8], e: &[u8]| Permission {
        perm_type: t as i32,
        key: k.to_vec(),
        range_end: e.to_vec(),
    };
    m.grant(&p(PermType::Read, b"a", b"b"));
    m.grant(&p(PermType::Read, b"b", b""));
    m.grant(&p(PermType::Readwrite, b"c", &[0]));
    // adjacent intervals and a point join without a gap
    assert_eq!(m.read(b"a", b"b\0"), Verdict::Allow);
    assert_eq!(m.read(b"a", b"b\0\0"), Verdict::Deny);
    assert_eq!(m.read(b"ab", &[]), Verdict::Allow);
    assert_eq!(m.read(b"ba", &[]), Verdict::Deny);
    // from-key to the end
    assert_eq!(m.read(b"c", &[0]), Verdict::Allow);
    assert_eq!(m.read(b"b", &[0]), Verdict::Deny);
    assert_eq!(m.write(b"zz", &[]), Verdict::Allow);
    assert_eq!(m.write(b"a", &[]), Verdict::Deny);
    // degenerate ranges are left open
    assert_eq!(m.read(b"b", b"a"), Verdict::Either);
    assert_eq!(m.read(b"b", b"b"), Verdict::Either);
    // a txn needs all of it
    let t = TxnRequest {
        compare: vec![Compare {
            key: b"a".to_vec(),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"c".to_vec(),
                prev_kv: true,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: b"a".to_vec(),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            })),
        }],
    };
    assert_eq!(
        m.txn(&t),
        Verdict::Deny,
        "the nested put writes a read-only key"
    );
}
