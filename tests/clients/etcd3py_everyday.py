"""A day of work for etcd3-py (PyPI), a client that speaks only etcd's
JSON gateway: keys, prefixes, a transaction, a lease kept alive and
revoked, a watch, a lock, a compaction and its error, users, roles and
auth. Prints one line per step, for tests/integration/gateway.rs to
compare between etcd 3.4 and rsetcd (run against twins: equal ids).

usage: python etcd3py_everyday.py HOST PORT
"""
import re
import sys
import threading

from etcd3 import Client

host, port = sys.argv[1], int(sys.argv[2])
c = Client(host, port)


def show(name, value):
    text = repr(value)
    # the raft term is the cluster's own history, not the data's
    text = re.sub(r"raft_term=\d+", "raft_term=T", text)
    print(f"{name}: {text}", flush=True)


def attempt(name, f):
    try:
        show(name, f())
    except Exception as e:  # the error a user sees
        show(name, f"{type(e).__name__}: {e}")


show("version prefix", c.api_prefix)
attempt("put", lambda: c.put("foo", "bar"))
attempt("put prev_kv", lambda: c.put("foo", "baz", prev_kv=True))
attempt("get", lambda: c.range("foo"))
attempt("get missing", lambda: c.range("nope"))
for k in ("app/a", "app/b", "app/c"):
    c.put(k, k.upper())
attempt("prefix", lambda: c.range("app/", prefix=True))
attempt("prefix count", lambda: c.range("app/", prefix=True, count_only=True))
attempt("delete", lambda: c.delete_range("app/b", prev_kv=True))

txn = c.Txn()
txn.compare(txn.key("foo").value == b"baz")
txn.success(txn.put("foo", "qux"))
txn.failure(txn.range("foo"))
attempt("txn", txn.commit)

attempt("lease grant", lambda: c.lease_grant(60, ID=1000))
attempt("put with lease", lambda: c.put("leased", "v", lease=1000))
attempt("keepalive", lambda: c.lease_keep_alive_once(1000))
attempt("lease revoke", lambda: c.lease_revoke(1000))
attempt("leased key gone", lambda: c.range("leased"))
attempt("revoke missing", lambda: c.lease_revoke(1000))

events = []
w = c.Watcher(key="w/", prefix=True)
w.onEvent(lambda e: events.append(e))
w.runDaemon()
import time

time.sleep(0.5)
c.put("w/1", "one")
c.delete_range("w/1")
deadline = time.time() + 10
while len(events) < 2 and time.time() < deadline:
    time.sleep(0.05)
w.stop()
for i, e in enumerate(events):
    show(f"watch event {i}", e)

lock = c.Lock("mylock", lock_ttl=10)
show("lock acquired", lock.acquire(timeout=5) is not None and lock.is_acquired)
lock.release()
show("lock released", lock.is_acquired)

rev = c.range("foo").header.revision
attempt("compact", lambda: c.compact(rev - 2))
attempt("get compacted", lambda: c.range("foo", revision=rev - 3))

attempt("user add root", lambda: c.user_add("root", "pw"))
attempt("user grant root", lambda: c.user_grant_role("root", "root"))
attempt("user add u1", lambda: c.user_add("u1", "pw1"))
attempt("role add", lambda: c.role_add("r1"))
attempt("role grant", lambda: c.role_grant_permission("r1", key="app/", prefix=True))
attempt("user grant u1", lambda: c.user_grant_role("u1", "r1"))
attempt("auth enable", lambda: c.auth_enable())
u1 = Client(host, port)
attempt("u1 bad password", lambda: u1.auth("u1", "nope"))
attempt("u1 authenticates", lambda: u1.auth("u1", "pw1") or "token kept")
attempt("u1 reads app/", lambda: u1.range("app/", prefix=True))
attempt("u1 reads foo", lambda: u1.range("foo"))
attempt("u1 writes app/a", lambda: u1.put("app/a", "x"))
bad = Client(host, port)
attempt("anonymous read", lambda: bad.range("foo"))
root = Client(host, port)
root.auth("root", "pw")
attempt("root reads foo", lambda: root.range("foo"))
attempt("auth disable", lambda: root.auth_disable())
