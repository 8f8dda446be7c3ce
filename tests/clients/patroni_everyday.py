"""Patroni's etcd3 DCS doing what a Patroni cluster's HA loops do, against
one server (host:port in argv[1]); prints a transcript that must be the same
against etcd and against rsetcd (tests/integration/gateway.rs compares them).

Patroni speaks only etcd's JSON gateway (urllib3, /v3/...): version
discovery through /version, member discovery, leases and keep-alives, the
leader key taken with a create-revision compare, transactions, and a cache
kept by a /v3/watch stream. PostgreSQL is not needed for any of it: the HA
loop's DCS calls are made here directly, two nodes in one process.
"""

import json
import logging
import sys
import time

from patroni.dcs import get_dcs

ENDPOINT = sys.argv[1]
logging.basicConfig(level=logging.CRITICAL)


def node(name, **credentials):
    return get_dcs({
        "scope": "batman",
        "name": name,
        "ttl": 30,
        "loop_wait": 10,
        "retry_timeout": 10,
        "etcd3": {"hosts": [ENDPOINT], **credentials},
    })


def show(step, dcs, ready):
    """What `dcs` (a node's cache, fed by its /v3/watch stream) shows once
    `ready` holds for it: what the writes made, not how fast they came."""
    end = time.time() + 10
    c = dcs.get_cluster()
    while not ready(c) and time.time() < end:
        time.sleep(0.1)
        c = dcs.get_cluster()
    members = sorted(
        (m.name, m.data.get("role"), m.data.get("state"), m.data.get("api_url")) for m in c.members
    )
    print(step, "" if ready(c) else "(NOT SEEN within 10 s)")
    print("  initialized:", c.initialize)
    print("  leader:", c.leader and c.leader.name)
    print("  members:", members)
    print("  config:", c.config and c.config.data)
    print("  failover:", c.failover and (c.failover.leader, c.failover.candidate))
    print("  history:", c.history and c.history.lines)
    print("  sync:", c.sync and (c.sync.leader, sorted(c.sync.members)))
    print("  status:", c.status and c.status.last_lsn)
    return c


def leading(name):
    return lambda c: c.leader is not None and c.leader.name == name and len(c.members) == 2


def role(name, r):
    return lambda c: any(m.name == name and m.data.get("role") == r for m in c.members)


def member_data(role, state, port):
    return {
        "conn_url": f"postgres://127.0.0.1:{port}/postgres",
        "api_url": f"http://127.0.0.1:{port + 3000}/patroni",
        "state": state,
        "role": role,
        "version": "4.1.5",
    }


a = node("alice")
b = node("bob")
print("client ready:", type(a).__name__, type(b).__name__)

print("initialize alice:", bool(a.initialize(create_new=True, sysid="7301234567890123456")))
print("initialize bob (lost race):", bool(b.initialize(create_new=True, sysid="7309999999999999999")))
print("touch alice:", a.touch_member(member_data("primary", "running", 5432)))
print("touch bob:", b.touch_member(member_data("replica", "streaming", 5433)))
print("alice takes the leader key:", bool(a.attempt_to_acquire_leader()))
print("bob tries the leader key:", bool(b.attempt_to_acquire_leader()))
print("config:", a.set_config_value(json.dumps({"ttl": 30, "loop_wait": 10, "postgresql": {"use_pg_rewind": True}})))
print("history:", a.set_history_value(json.dumps([[1, 25165984, "no recovery target specified"]])))
cluster = show("after bootstrap (alice's view)", a, lambda c: (
    leading("alice")(c) and c.config is not None and c.history is not None and c.initialize is not None
))
print("alice updates the leader (lsn 100):", a.update_leader(cluster, 100))
cluster = show("bob's view", b, lambda c: (
    leading("alice")(c) and c.config is not None and c.history is not None and c.status.last_lsn == 100
))

# a stale config version is refused (a mod revision compare), a fresh one taken
old = cluster.config.version
print("config with the current version:", a.set_config_value(json.dumps({"ttl": 30, "loop_wait": 5}), old))
print("config with the old version:", a.set_config_value(json.dumps({"ttl": 99}), old))

# a sync standby and a manual switchover request
print("sync state:", bool(a.set_sync_state_value(json.dumps({"leader": "alice", "sync_standby": "bob"}))))
print("failover:", b.set_failover_value(json.dumps({"leader": "alice", "member": "bob"})))
cluster = show("before the switchover (alice's view)", a, lambda c: (
    c.failover is not None and c.sync.leader == "alice" and c.config.data.get("loop_wait") == 5
))

# the switchover: alice lets the key go, bob takes it, alice follows
print("alice deletes the leader key:", a.delete_leader(cluster.leader, 200))
show("bob's view without a leader", b, lambda c: (
    c.leader is None and c.failover is not None and c.status.last_lsn == 200
))
print("bob takes the leader key:", bool(b.attempt_to_acquire_leader()))
print("alice tries again:", bool(a.attempt_to_acquire_leader()))
print("touch alice as replica:", a.touch_member(member_data("replica", "streaming", 5432)))
print("touch bob as primary:", b.touch_member(member_data("primary", "running", 5433)))
cluster = show("bob's view as leader", b, lambda c: leading("bob")(c) and role("bob", "primary")(c))
print("clear failover:", b.manual_failover("", "", version=cluster.failover.version))
print("bob updates the leader (lsn 300):", b.update_leader(cluster, 300))
cluster = show("after the switchover (alice's view)", a, lambda c: (
    leading("bob")(c) and role("alice", "replica")(c) and role("bob", "primary")(c)
    and not (c.failover.leader or c.failover.candidate) and c.status.last_lsn == 300
))
print("alice's update is refused (not hers):", a.update_leader(cluster, 301))

# the cluster goes away
print("cancel initialization:", bool(a.cancel_initialization()))
print("delete cluster:", bool(a.delete_cluster()))
show("after delete (bob's view)", b, lambda c: not c.members and c.leader is None and c.config is None)

# with auth on: Patroni's username and password (a token from
# /v3/auth/authenticate, sent in the Authorization header); a user with
# read-only permission gets its writes refused
rpc = b._client.call_rpc
b64 = lambda v: __import__("base64").b64encode(v.encode()).decode()
for call, fields in [
    ("/auth/user/add", {"name": "root", "password": "rootpw"}),
    ("/auth/user/grant", {"user": "root", "role": "root"}),
    ("/auth/role/add", {"name": "patroni"}),
    ("/auth/role/grant", {"name": "patroni", "perm": {
        "permType": "READWRITE", "key": b64("/service/"), "range_end": b64("/service0")}}),
    ("/auth/user/add", {"name": "patroni", "password": "secret"}),
    ("/auth/user/grant", {"user": "patroni", "role": "patroni"}),
    ("/auth/role/add", {"name": "viewer"}),
    ("/auth/role/grant", {"name": "viewer", "perm": {
        "permType": "READ", "key": b64("/service/"), "range_end": b64("/service0")}}),
    ("/auth/user/add", {"name": "viewer", "password": "look"}),
    ("/auth/user/grant", {"user": "viewer", "role": "viewer"}),
    ("/auth/enable", {}),
]:
    print(call, sorted(k for k in rpc(call, fields) if k != "header"))
c = node("carol", username="patroni", password="secret")
print("carol (authenticated) initializes:", bool(c.initialize(create_new=True, sysid="7305555555555555555")))
print("touch carol:", c.touch_member(member_data("primary", "running", 5434)))
print("carol takes the leader key:", bool(c.attempt_to_acquire_leader()))
v = node("vic", username="viewer", password="look")
print("vic (read-only) touches:", v.touch_member(member_data("replica", "streaming", 5435)))
print("vic tries the leader key:", bool(v.attempt_to_acquire_leader()))
show("with auth on (vic's view)", v, lambda c: (
    c.leader is not None and c.leader.name == "carol" and len(c.members) == 1 and c.initialize is not None
))
r = node("admin", username="root", password="rootpw")
print("/auth/disable", sorted(k for k in r._client.call_rpc("/auth/disable", {}) if k != "header"))
print("delete cluster:", bool(r.delete_cluster()))
