//! etcd's JSON gateway (issue 17): the same JSON requests, good and bad,
//! against etcd 3.4 and against ours (twins: the same member and cluster
//! ids), compared whole after masking what differs by nature (raft term,
//! versions, sizes, client URLs, tokens, remaining TTLs); a watch over
//! HTTP receiving puts made over gRPC; keep-alive and snapshot streams;
//! the Authorization header; --enable-grpc-gateway=false.

use crate::support;
use crate::support::common::{twin_options, ServerOptions, TestServer};
use crate::support::http::{exchange, Answer};

use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Fields whose values differ between two servers holding the same data.
const MASKED: &[&str] = &[
    "raft_term",
    "raftTerm",
    "version",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftAppliedIndex",
    "clientURLs",
    "token",
    "hash",
];

fn mask(v: &mut Value, remaining_ttl: bool) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if MASKED.contains(&k.as_str()) || (remaining_ttl && k == "TTL") {
                    *x = Value::String("<masked>".into());
                } else {
                    mask(x, remaining_ttl);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask(x, remaining_ttl)),
        _ => {}
    }
}

/// What a request's answer is compared by: the status, the content type
/// and the body (JSON masked; other text as it is).
fn comparable(a: &Answer, remaining_ttl: bool) -> String {
    let body = match serde_json::from_str::<Value>(&a.body) {
        Ok(mut v) => {
            mask(&mut v, remaining_ttl);
            v.to_string()
        }
        Err(_) => a.body.clone(),
    };
    // Go's framing: a Content-Length, or chunked (a body past 2048
    // bytes, or an error the gRPC service answered, with its Trailer)
    let framing = if a.header("transfer-encoding").is_some() {
        "chunked"
    } else {
        "length"
    };
    format!(
        "{} {} cors={:?} location={:?} trailer={:?} {framing} {}",
        a.status,
        a.header("content-type").unwrap_or("-"),
        a.header("access-control-allow-origin"),
        a.header("location"),
        a.header("trailer"),
        body
    )
}

/// One request of the differential sequence.
struct Step {
    method: &'static str,
    path: &'static str,
    body: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// A lease's remaining TTL may differ by a second.
    remaining_ttl: bool,
    /// Messages that differ in wording only (decoder errors): compare
    /// status and code.
    code_only: bool,
    /// etcd 3.5 answers with a header where 3.4 sends none (Alarm:
    /// v3.5's maintenanceServer.Alarm fills it); we follow 3.5.
    header_since_35: bool,
}

const fn post(path: &'static str, body: &'static str) -> Step {
    Step {
        method: "POST",
        path,
        body,
        headers: &[],
        remaining_ttl: false,
        code_only: false,
        header_since_35: false,
    }
}

const fn post_ttl(path: &'static str, body: &'static str) -> Step {
    Step {
        remaining_ttl: true,
        ..post(path, body)
    }
}

const fn post_code(path: &'static str, body: &'static str) -> Step {
    Step {
        code_only: true,
        ..post(path, body)
    }
}

const fn post_35(path: &'static str, body: &'static str) -> Step {
    Step {
        header_since_35: true,
        ..post(path, body)
    }
}

const fn with_headers(
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> Step {
    Step {
        headers,
        ..post(path, body)
    }
}

const fn other(method: &'static str, path: &'static str) -> Step {
    Step {
        method,
        ..post(path, "")
    }
}

/// Keys and values in base64: foo=Zm9v bar=YmFy baz=YmF6 fop=Zm9w k2=azI=
/// fo=Zm8= (prefix end Zm9w is "fop").
const STEPS: &[Step] = &[
    post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    post(
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
    ),
    post("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    post("/v3/kv/range", r#"{"key":"bm9wZQ=="}"#),
    post("/v3/kv/put", r#"{"key":"Zm8=","value":"","lease":"0"}"#),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm8=","range_end":"Zm9w","limit":1}"#,
    ),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm8=","rangeEnd":"Zm9w","count_only":true}"#,
    ),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm8=","range_end":"Zm9w","sort_order":"DESCEND","sort_target":"KEY"}"#,
    ),
    post("/v3/kv/range", "{}"),
    post("/v3/kv/range", ""),
    post("/v3/kv/deleterange", r#"{"key":"bm9wZQ=="}"#),
    post("/v3/kv/put", r#"{"key":"azI=","value":"dg=="}"#),
    post("/v3/kv/deleterange", r#"{"key":"azI=","prev_kv":true}"#),
    post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy","prev_kv":true}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    ),
    post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"bm8="}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}],"failure":[{"request_range":{"key":"Zm9v"}},{"request_txn":{}}]}"#,
    ),
    post("/v3/kv/compaction", r#"{"revision":"3"}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","revision":1000}"#),
    post("/v3/lease/grant", r#"{"TTL":60,"ID":1000}"#),
    post("/v3/lease/grant", r#"{"TTL":60,"ID":1000}"#),
    post(
        "/v3/kv/put",
        r#"{"key":"bGs=","value":"dg==","lease":1000}"#,
    ),
    post("/v3/kv/put", r#"{"key":"bGs=","value":"dg==","lease":999}"#),
    post_ttl("/v3/lease/timetolive", r#"{"ID":1000,"keys":true}"#),
    post_ttl("/v3/kv/lease/timetolive", r#"{"ID":999}"#),
    post("/v3/lease/leases", "{}"),
    post("/v3/lease/revoke", r#"{"ID":999}"#),
    post("/v3/kv/lease/revoke", r#"{"ID":1000}"#),
    post("/v3/cluster/member/list", "{}"),
    post_35("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
    post("/v3/maintenance/status", "{}"),
    post("/v3/maintenance/hash", "{}"),
    post("/v3beta/kv/range", r#"{"key":"Zm9v"}"#),
    // refused before the call
    post("/v3/kv/range", "hello"),
    post("/v3/kv/range", "[1,2]"),
    post("/v3/kv/range", r#"{"key":"Zm9vMg"}"#),
    post("/v3/kv/range", r#"{"key":"-_8="}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","sort_order":"SIDEWAYS"}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","limit":1.5}"#),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm9v","limit":"99999999999999999999"}"#,
    ),
    post("/v3/kv/range", r#"{"key":"Zm9v","limit":true}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","limit":"abc"}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","serializable":"true"}"#),
    post("/v3/kv/range", r#"{"key":5}"#),
    post("/v3/kv/range", r#"{"key":"Zm9v","sort_order":true}"#),
    post("/v3/lease/grant", r#"{"TTL":[1]}"#),
    post("/v3/auth/user/get", r#"{"name":1}"#),
    post("/v3/kv/txn", r#"{"compare":{}}"#),
    post("/v3/kv/txn", r#"{"success":["x"]}"#),
    post_code("/v3/kv/range", r#"{"key":"Zm9v"#),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm9v","nope":{"a":[1]}} trailing"#,
    ),
    other("GET", "/v3/kv/range"),
    other("PUT", "/v3/kv/put"),
    // Go's ServeMux and etcd's access controller around the gateway
    post("/v3", "{}"),
    post("/v3//kv/range?x=1", r#"{"key":"Zm9v"}"#),
    other("GET", "/v3/./kv/../kv/range"),
    post("/v3beta", "{}"),
    post("/v3alpha/kv/range", "{}"),
    other("GET", "/nope"),
    other("GET", "/version/"),
    other("OPTIONS", "/nope"),
    other("POST", "/health"),
    with_headers(
        "/v3/maintenance/status",
        &[
            ("X-HTTP-Method-Override", "GET"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "{}",
    ),
    with_headers(
        "/v3/maintenance/status",
        &[
            ("X-HTTP-Method-Override", "GET"),
            ("Content-Type", "application/json"),
        ],
        "{}",
    ),
    with_headers(
        "/v3/kv/range",
        &[
            ("X-HTTP-Method-Override", "post"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        r#"{"key":"Zm9v"}"#,
    ),
    // a body past Go's 2048-byte buffer goes out chunked
    post(
        "/v3/kv/put",
        r#"{"key":"Ymln","value":"eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"}"#,
    ),
    post("/v3/kv/range", r#"{"key":"Ymln"}"#),
    post("/v3/kv/deleterange", r#"{"key":"Ymln"}"#),
    post("/v3/kv/nope", "{}"),
    post("/v3/kv/range/", "{}"),
    post("/v3/auth/status", "{}"),
    // auth: users, roles, enable; then requests with and without tokens
    post("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
    post("/v3/auth/user/add", r#"{"name":"u1","password":"pw1"}"#),
    post("/v3/auth/role/add", r#"{"name":"r1"}"#),
    post(
        "/v3/auth/role/grant",
        r#"{"name":"r1","perm":{"key":"Zm9v","range_end":"Zm9w","permType":"READWRITE"}}"#,
    ),
    post("/v3/auth/user/grant", r#"{"user":"u1","role":"r1"}"#),
    post("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
    post("/v3/auth/role/get", r#"{"role":"r1"}"#),
    post("/v3/auth/user/list", "{}"),
    post("/v3/auth/enable", "{}"),
    post("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    post("/v3/maintenance/status", "{}"),
    post(
        "/v3/auth/authenticate",
        r#"{"name":"u1","password":"nope"}"#,
    ),
    post("/v3/auth/authenticate", r#"{"name":"u1","password":"pw1"}"#),
];

async fn run_steps(url: &str, ours: bool) -> Vec<(Answer, bool, bool)> {
    let mut out = Vec::new();
    for s in STEPS {
        let mut a = exchange(s.method, url, s.path, s.headers, s.body)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", s.method, s.path));
        if ours && s.header_since_35 {
            let mut v: Value = serde_json::from_str(&a.body).unwrap();
            let header = v.as_object_mut().and_then(|o| o.remove("header"));
            assert!(header.is_some(), "{} answered without 3.5's header", s.path);
            a.body = v.to_string();
        }
        out.push((a, s.remaining_ttl, s.code_only));
    }
    out
}

/// status, then the error code when the body is an error object.
fn code_of(a: &Answer) -> String {
    let code = serde_json::from_str::<Value>(&a.body)
        .ok()
        .and_then(|v| v.get("code").cloned());
    format!("{} {code:?}", a.status)
}

#[test]
fn json_requests_get_etcds_answers() {
    if support::common::skip_without_reference() {
        return;
    }
    let options = twin_options();
    let etcd = TestServer::start_reference(&options).unwrap();
    let ours = TestServer::start_ours(&options).unwrap();
    runtime().block_on(async {
        let theirs = run_steps(&etcd.client_url, false).await;
        let mine = run_steps(&ours.client_url, true).await;
        let mut differences = Vec::new();
        for ((step, (e, ttl, code_only)), (o, _, _)) in STEPS.iter().zip(&theirs).zip(&mine) {
            let (want, got) = if *code_only {
                (code_of(e), code_of(o))
            } else {
                (comparable(e, *ttl), comparable(o, *ttl))
            };
            if want != got {
                differences.push(format!(
                    "{} {} {}\n  etcd: {want}\n  ours: {got}",
                    step.method, step.path, step.body
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "{} of {} answers differ:\n{}",
            differences.len(),
            STEPS.len(),
            differences.join("\n")
        );
        // auth is on now: a token that is not one is refused by both
        let put = r#"{"key":"Zm9v","value":"YmFy"}"#;
        for url in [&etcd.client_url, &ours.client_url] {
            let a = exchange("POST", url, "/v3/kv/range", &[("Authorization", "x")], put).await;
            assert_eq!(a.unwrap().status, 401);
        }
    });
}

/// --cors and --host-whitelist as etcd 3.4 applies them to every plain
/// HTTP answer: a Host not on the list is refused (421, DNS rebinding); an
/// allowed Origin is echoed in the CORS headers, another gets none.
#[test]
fn cors_and_host_whitelist_answer_as_etcds() {
    if support::common::skip_without_reference() {
        return;
    }
    let options = ServerOptions {
        extra_args: vec![
            "--cors=http://good.example:8080".into(),
            "--host-whitelist=localhost,good.example".into(),
        ],
        ..twin_options()
    };
    let etcd = TestServer::start_reference(&options).unwrap();
    let ours = TestServer::start_ours(&options).unwrap();
    let range = r#"{"key":"Zm9v"}"#;
    type Headers = &'static [(&'static str, &'static str)];
    let cases: &[(&str, &str, Headers)] = &[
        ("POST", "/v3/kv/range", &[("Host", "evil.example:2379")]),
        ("GET", "/health", &[("Host", "127.0.0.1")]),
        ("POST", "/v3/kv/range", &[("Host", "localhost:2379")]),
        (
            "POST",
            "/v3/kv/range",
            &[
                ("Host", "good.example"),
                ("Origin", "http://good.example:8080"),
            ],
        ),
        (
            "POST",
            "/v3/kv/range",
            &[("Host", "localhost"), ("Origin", "http://bad.example")],
        ),
        (
            "OPTIONS",
            "/v3/kv/range",
            &[
                ("Host", "localhost"),
                ("Origin", "http://good.example:8080"),
            ],
        ),
        (
            "GET",
            "/nope",
            &[
                ("Host", "localhost"),
                ("Origin", "http://good.example:8080"),
            ],
        ),
    ];
    runtime().block_on(async {
        for (method, path, headers) in cases {
            let mut answers = Vec::new();
            for url in [&etcd.client_url, &ours.client_url] {
                let a = exchange(method, url, path, headers, range).await.unwrap();
                answers.push(comparable(&a, false));
            }
            assert_eq!(answers[1], answers[0], "{method} {path} {headers:?}");
        }
    });
}

/// The token from /v3/auth/authenticate in the Authorization header, as
/// etcd reads it (as-is: "Bearer <token>" is refused).
#[test]
fn the_authorization_header_carries_the_token() {
    let ours = TestServer::start_ours(&ServerOptions::default()).unwrap();
    let url = ours.client_url.clone();
    runtime().block_on(async move {
        let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: &'static str| {
            let url = url.clone();
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                exchange("POST", &url, path, &h, body).await.unwrap()
            }
        };
        for (path, body) in [
            ("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
            ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
            ("/v3/auth/enable", "{}"),
        ] {
            assert_eq!(post(path, vec![], body).await.status, 200, "{path}");
        }
        let auth = post("/v3/auth/authenticate", vec![], r#"{"name":"root","password":"pw"}"#).await;
        let token = serde_json::from_str::<Value>(&auth.body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let put = r#"{"key":"Zm9v","value":"YmFy"}"#;
        let none = post("/v3/kv/put", vec![], put).await;
        assert_eq!(
            (none.status, none.body.as_str()),
            (
                400,
                r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#
            )
        );
        let ok = post("/v3/kv/put", vec![("Authorization", token.clone())], put).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        let metadata = post("/v3/kv/range", vec![("Grpc-Metadata-Token", token.clone())], r#"{"key":"Zm9v"}"#).await;
        assert!(metadata.body.contains(r#""value":"YmFy""#), "{}", metadata.body);
        let bearer = post("/v3/kv/put", vec![("Authorization", format!("Bearer {token}"))], put).await;
        assert_eq!(bearer.status, 401, "{}", bearer.body);
        assert!(bearer.body.contains("etcdserver: invalid auth token"));
    });
}

/// A watch over HTTP gets the puts made over gRPC, one `{"result":...}`
/// line each; keep-alive answers a line per request; a snapshot over HTTP
/// is etcd's format with its trailer.
#[test]
fn streams_answer_result_lines() {
    use rsetcd::proto::etcdserverpb::kv_client::KvClient;
    use rsetcd::proto::etcdserverpb::PutRequest;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let ours = TestServer::start_ours(&ServerOptions::default()).unwrap();
    let url = ours.client_url.clone();
    runtime().block_on(async move {
        let addr = url.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let body = r#"{"create_request":{"key":"Zm9v","range_end":"Zm9w","prev_kv":true}}"#;
        let req = format!(
            "POST /v3/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut reader = tokio::io::BufReader::new(s);
        // headers, then chunk-size lines and data lines
        let mut lines = Vec::new();
        let mut kv = KvClient::connect(url.clone()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut put_done = false;
        while lines
            .iter()
            .filter(|l: &&String| l.starts_with("{\"result\""))
            .count()
            < 3
        {
            assert!(
                std::time::Instant::now() < deadline,
                "lines so far: {lines:?}"
            );
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                reader.read_line(&mut line),
            )
            .await
            .expect("a line within 10 s")
            .unwrap();
            assert!(n > 0, "the watch stream ended: {lines:?}");
            lines.push(line.trim_end().to_string());
            if !put_done && line.contains(r#""created":true"#) {
                for v in ["bar", "baz"] {
                    kv.put(PutRequest {
                        key: b"foo".to_vec(),
                        value: v.as_bytes().to_vec(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
                put_done = true;
            }
        }
        assert!(lines.iter().any(|l| l == "HTTP/1.1 200 OK"), "{lines:?}");
        let results: Vec<Value> = lines
            .iter()
            .filter(|l| l.starts_with("{\"result\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(results[0]["result"]["created"], true);
        let second = &results[2]["result"]["events"][0];
        assert_eq!(second["kv"]["value"], "YmF6", "{second}");
        assert_eq!(second["prev_kv"]["value"], "YmFy", "{second}");
        assert_eq!(second["kv"]["version"], "2", "{second}");

        // keep-alive: one line per request object, then the end
        let grant = exchange(
            "POST",
            &url,
            "/v3/lease/grant",
            &[],
            r#"{"TTL":30,"ID":77}"#,
        )
        .await
        .unwrap();
        assert_eq!(grant.status, 200, "{}", grant.body);
        let ka = exchange(
            "POST",
            &url,
            "/v3/lease/keepalive",
            &[],
            r#"{"ID":77} {"ID":77}"#,
        )
        .await
        .unwrap();
        let ka_lines: Vec<&str> = ka.body.lines().collect();
        assert_eq!(ka_lines.len(), 2, "{}", ka.body);
        assert!(
            ka_lines[0].starts_with(r#"{"result":{"header":"#)
                && ka_lines[0].ends_with(r#""ID":"77","TTL":"30"}}"#),
            "{}",
            ka.body
        );

        // snapshot: base64 blobs, the last one the SHA-256 of the rest
        let snap = exchange("POST", &url, "/v3/maintenance/snapshot", &[], "{}")
            .await
            .unwrap();
        assert_eq!(snap.status, 200);
        use base64::Engine as _;
        let mut bytes = Vec::new();
        for l in snap.body.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            let blob = v["result"]["blob"].as_str().unwrap_or_default();
            bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(blob)
                    .unwrap(),
            );
        }
        let (db, trailer) = bytes.split_at(bytes.len() - 32);
        use sha2::Digest as _;
        assert_eq!(sha2::Sha256::digest(db).as_slice(), trailer);
        let reader = rsetcd::storage::bbolt::Reader::from_bytes(db.to_vec()).unwrap();
        assert_eq!(reader.check(), Vec::<String>::new());
    });
}

#[test]
fn the_gateway_can_be_turned_off() {
    let options = ServerOptions {
        extra_args: vec!["--enable-grpc-gateway=false".into()],
        ..ServerOptions::default()
    };
    let ours = TestServer::start_ours(&options).unwrap();
    runtime().block_on(async {
        let a = exchange(
            "POST",
            &ours.client_url,
            "/v3/kv/range",
            &[],
            r#"{"key":"Zm9v"}"#,
        )
        .await
        .unwrap();
        assert_eq!((a.status, a.body.as_str()), (404, "404 page not found\n"));
        // the rest of the client port is unchanged
        let h = exchange("GET", &ours.client_url, "/health", &[], "")
            .await
            .unwrap();
        assert_eq!(h.status, 200);
    });
}

/// Bodies no client sends: a clear answer each, and the server serves on.
#[test]
fn hostile_bodies_get_an_answer_and_the_server_serves_on() {
    let ours = TestServer::start_ours(&ServerOptions::default()).unwrap();
    let url = ours.client_url.clone();
    runtime().block_on(async move {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let nested = format!(
            r#"{{"key":"Zm9v","request_txn":{}}}"#,
            "{\"success\":[{\"request_txn\":".repeat(300) + &"}]}".repeat(300)
        );
        for (path, body, status) in [
            ("/v3/kv/range", deep.as_str(), 400),
            ("/v3/kv/txn", nested.as_str(), 400),
            ("/v3/kv/range", "\u{0}\u{1}\u{2}", 400),
            ("/v3/watch", "{\"create_request\":", 500),
            ("/v3/lease/keepalive", "[[[[", 500),
            ("/v3/election/observe", "nope", 400),
        ] {
            let a = exchange("POST", &url, path, &[], body).await.unwrap();
            assert_eq!(
                a.status,
                status,
                "{path} {}: {}",
                &body[..body.len().min(40)],
                a.body
            );
            let v: Value = serde_json::from_str(&a.body).unwrap_or_else(|_| panic!("{}", a.body));
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}",
                a.body
            );
        }
        // a body announced far past the limit: refused before it is read
        {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let addr = url.trim_start_matches("http://");
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /v3/kv/put HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000000\r\n\r\n{{\"key\":\""
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = vec![0u8; 4096];
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut answer))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            let answer = String::from_utf8_lossy(&answer[..n]);
            assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
            assert!(answer.contains("grpc: received message larger than max"), "{answer}");
        }
        let ok = exchange("POST", &url, "/v3/maintenance/status", &[], "{}")
            .await
            .unwrap();
        assert_eq!(ok.status, 200);
    });
}

/// etcd3-py (from PyPI; .ci/run installs it and names its python in
/// RSETCD_ETCD3PY_PYTHON), a client that speaks only the JSON gateway,
/// does a day of work (tests/clients/etcd3py_everyday.py: keys, a txn, a
/// lease, a watch, a lock, a compaction, auth) against etcd 3.4 and
/// against ours, twins: it sees the same answers, line for line.
#[test]
fn etcd3py_does_its_everyday_work_as_against_etcd() {
    let Ok(python) = std::env::var("RSETCD_ETCD3PY_PYTHON") else {
        eprintln!("skipped: RSETCD_ETCD3PY_PYTHON is not set (.ci/run installs etcd3-py from PyPI and sets it)");
        return;
    };
    if support::common::skip_without_reference() {
        return;
    }
    same_transcript_as_etcd(&python, "etcd3py_everyday.py", |port| {
        vec!["127.0.0.1".into(), port.into()]
    });
}

/// Patroni 4 (PyPI, `patroni[etcd3,psycopg3]`, installed by .ci/run with
/// RSETCD_PATRONI_PYTHON), whose etcd3 DCS speaks only the JSON gateway,
/// runs two nodes' HA-loop calls (tests/clients/patroni_everyday.py:
/// bootstrap, the leader key under a lease, config with versions, sync
/// state, a switchover, the watch-fed cache, auth with a read-only user,
/// removal) and sees the same as against etcd 3.4.
#[test]
fn patroni_runs_its_ha_loop_calls_as_against_etcd() {
    let Ok(python) = std::env::var("RSETCD_PATRONI_PYTHON") else {
        eprintln!("skipped: RSETCD_PATRONI_PYTHON is not set (.ci/run installs Patroni from PyPI and sets it)");
        return;
    };
    if support::common::skip_without_reference() {
        return;
    }
    same_transcript_as_etcd(&python, "patroni_everyday.py", |port| {
        vec![format!("127.0.0.1:{port}")]
    });
}

/// Runs tests/clients/`script` against etcd 3.4 and against ours (twins):
/// the transcripts it prints must be the same, line for line.
fn same_transcript_as_etcd(python: &str, script: &str, args: impl Fn(&str) -> Vec<String>) {
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let options = twin_options();
    let run = |server: &TestServer| {
        let port = server.client_url.rsplit(':').next().unwrap();
        let out = std::process::Command::new(python)
            .arg(&script)
            .args(args(port))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let etcd = TestServer::start_reference(&options).unwrap();
    let theirs = run(&etcd);
    drop(etcd);
    let ours = TestServer::start_ours(&options).unwrap();
    let mine = run(&ours);
    assert!(theirs.lines().count() > 30, "{theirs}");
    for (t, m) in theirs.lines().zip(mine.lines()) {
        assert_eq!(m, t, "{script} saw a different answer");
    }
    assert_eq!(theirs.lines().count(), mine.lines().count(), "{mine}");
}

/// With --listen-client-http-urls (etcd 3.5), HTTP traffic (the gateway,
/// /health) moves to those URLs and the client URLs serve gRPC only.
#[test]
fn http_traffic_moves_to_the_listen_client_http_urls() {
    let port = crate::support::cluster::free_port().unwrap();
    let http_url = format!("http://127.0.0.1:{port}");
    let options = ServerOptions {
        extra_args: vec![format!("--listen-client-http-urls={http_url}")],
        ..ServerOptions::default()
    };
    let ours = TestServer::start_ours(&options).unwrap();
    let grpc_url = ours.client_url.clone();
    runtime().block_on(async move {
        use rsetcd::proto::etcdserverpb::kv_client::KvClient;
        use rsetcd::proto::etcdserverpb::PutRequest;
        let mut kv = KvClient::connect(grpc_url.clone()).await.unwrap();
        kv.put(PutRequest {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        let a = exchange("POST", &http_url, "/v3/kv/range", &[], r#"{"key":"YQ=="}"#)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.contains(r#""value":"MQ==""#), "{}", a.body);
        let health = exchange("GET", &http_url, "/health", &[], "")
            .await
            .unwrap();
        assert_eq!(health.status, 200);
        // the gRPC URL no longer answers JSON
        let json_on_grpc = exchange("POST", &grpc_url, "/v3/kv/range", &[], r#"{"key":"YQ=="}"#)
            .await
            .unwrap();
        assert!(!json_on_grpc.body.contains("MQ=="), "{}", json_on_grpc.body);
        // and gRPC does not reach the HTTP URL
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut kv = KvClient::connect(http_url.clone()).await?;
            kv.put(PutRequest {
                key: b"b".to_vec(),
                ..Default::default()
            })
            .await
            .map_err(anyhow::Error::from)
        })
        .await;
        assert!(!matches!(refused, Ok(Ok(_))), "gRPC served on the HTTP URL");
    });
    assert!(ours.log().contains(r#""traffic":"http""#), "{}", ours.log());
    assert!(!ours
        .log()
        .contains("Running http and grpc server on single port"));
}

/// The result lines of a watch over HTTP on `foo`..`fop` while two puts
/// and a delete are made over gRPC, the raft term masked.
async fn watch_lines(url: &str) -> Vec<String> {
    use rsetcd::proto::etcdserverpb::kv_client::KvClient;
    use rsetcd::proto::etcdserverpb::{DeleteRangeRequest, PutRequest};
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let addr = url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"create_request":{"key":"Zm9v","range_end":"Zm9w","prev_kv":true}}"#;
    let req = format!(
        "POST /v3/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut reader = tokio::io::BufReader::new(s);
    let mut kv = KvClient::connect(url.to_string()).await.unwrap();
    let mut results = Vec::new();
    let mut changed = false;
    while results.len() < 4 {
        let mut line = String::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reader.read_line(&mut line),
        )
        .await
        .expect("a line within 10 s")
        .unwrap();
        assert!(n > 0, "the watch stream ended: {results:?}");
        if !line.starts_with("{\"result\"") {
            continue;
        }
        let mut v: Value = serde_json::from_str(line.trim_end()).unwrap();
        mask(&mut v, false);
        results.push(v.to_string());
        if !changed {
            for value in ["bar", "baz"] {
                let put = PutRequest {
                    key: b"foo".to_vec(),
                    value: value.as_bytes().to_vec(),
                    ..Default::default()
                };
                kv.put(put).await.unwrap();
            }
            kv.delete_range(DeleteRangeRequest {
                key: b"foo".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
            changed = true;
        }
    }
    results
}

/// A watch over HTTP answers the same lines as etcd 3.4's (twins).
#[test]
fn a_watch_over_http_answers_as_etcds() {
    if support::common::skip_without_reference() {
        return;
    }
    let options = twin_options();
    let etcd = TestServer::start_reference(&options).unwrap();
    let theirs = runtime().block_on(watch_lines(&etcd.client_url));
    drop(etcd);
    let ours = TestServer::start_ours(&options).unwrap();
    let mine = runtime().block_on(watch_lines(&ours.client_url));
    assert_eq!(mine, theirs);
    assert!(theirs[3].contains(r#""type":"DELETE""#), "{theirs:?}");
}

/// `Grpc-Timeout` is the call's deadline, as etcd's gateway makes it: a
/// bad value is refused, a call still waiting at the deadline answers
/// 504 (here an election observe with no leader, which waits).
#[test]
fn grpc_timeout_answers_as_etcds() {
    if support::common::skip_without_reference() {
        return;
    }
    let options = twin_options();
    let run = |url: String| {
        runtime().block_on(async move {
            let mut out = Vec::new();
            for (timeout, path, body) in [
                ("xyz", "/v3/kv/range", r#"{"key":"Zm9v"}"#),
                ("1S", "/v3/election/observe", r#"{"name":"ZWxl"}"#),
                ("2S", "/v3/kv/range", r#"{"key":"Zm9v"}"#),
            ] {
                let a = exchange("POST", &url, path, &[("Grpc-Timeout", timeout)], body)
                    .await
                    .unwrap();
                out.push(comparable(&a, false));
            }
            out
        })
    };
    let etcd = TestServer::start_reference(&options).unwrap();
    let theirs = run(etcd.client_url.clone());
    drop(etcd);
    let ours = TestServer::start_ours(&options).unwrap();
    let mine = run(ours.client_url.clone());
    assert_eq!((&mine[0], &mine[2]), (&theirs[0], &theirs[2]));
    // the observe at its deadline: etcd answers either the gateway's 504
    // or, when its election server's own error wins the race, the stream
    // error of code Unknown; ours is the first
    let gateway_timeout = r#"504 application/json cors=Some("*") location=None trailer=None length {"error":"context deadline exceeded","message":"context deadline exceeded","code":4}"#;
    let server_error = r#"{"error":{"grpc_code":2,"http_code":500,"message":"context deadline exceeded","http_status":"Internal Server Error"}}"#;
    assert_eq!(mine[1], gateway_timeout);
    assert!(
        theirs[1] == gateway_timeout
            || (theirs[1].starts_with("500 application/json") && theirs[1].ends_with(server_error)),
        "{}",
        theirs[1]
    );
}

/// A client that leaves a watch over HTTP takes its watcher with it (the
/// server does not keep watching for nobody).
#[test]
fn a_client_that_leaves_takes_its_watch_along() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let ours = TestServer::start_ours(&ServerOptions::default()).unwrap();
    let url = ours.client_url.clone();
    runtime().block_on(async move {
        let watchers = || async {
            let m = exchange("GET", &url, "/metrics", &[], "").await.unwrap();
            m.body
                .lines()
                .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(-1.0)
        };
        let addr = url.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let body = r#"{"create_request":{"key":"cXVpZXQ="}}"#;
        let req = format!(
            "POST /v3/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut reader = tokio::io::BufReader::new(s);
        let mut line = String::new();
        while !line.contains(r#""created":true"#) {
            line.clear();
            let n = reader.read_line(&mut line).await.unwrap();
            assert!(n > 0, "the watch ended before it was created");
        }
        assert_eq!(watchers().await, 1.0);
        drop(reader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while watchers().await != 0.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the watcher outlived its client"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}
