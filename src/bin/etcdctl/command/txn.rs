//! `etcdctl txn [-i]`: reads compares, success ops and failure ops from
//! stdin (each list ended by an empty line) in etcdctl's syntax, e.g.
//! `mod("key1") > "0"` and `put key1 "some value"`, and commits them as one
//! transaction.

use std::io::BufRead;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::request_op::Request as Op;
use rsetcd::proto::etcdserverpb::{Compare, RequestOp, TxnRequest};

use crate::cli::{DEL_FLAGS, GET_FLAGS, PUT_FLAGS};
use crate::command::{del, get, put, Invocation};
use crate::exit::{CtlResult, ExitError};
use crate::flags::{FlagSet, FlagSpec};
use crate::global::{self, Client};

pub async fn run(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args("txn command does not accept argument"));
    }
    let interactive = inv.flags.bool("interactive");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    prompt(interactive, "compares:");
    let compare = read_lines(&mut input, parse_compare)?;
    prompt(interactive, "success requests (get, put, del):");
    let success = read_lines(&mut input, parse_request)?;
    prompt(interactive, "failure requests (get, put, del):");
    let failure = read_lines(&mut input, parse_request)?;
    let request = TxnRequest {
        compare,
        success,
        failure,
    };
    let mut client = Client::new(config);
    let response = client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).txn(req).await
        })
        .await?;
    printer.txn(&response)
}

fn prompt(interactive: bool, text: &str) {
    if interactive {
        println!("{text}");
    }
}

/// Reads lines until an empty one; input that ends before that newline is
/// an error (`Error: EOF`), as Go's `ReadString('\n')` reports it.
fn read_lines<T>(
    input: &mut impl BufRead,
    parse: impl Fn(&str) -> CtlResult<T>,
) -> CtlResult<Vec<T>> {
    let mut items = Vec::new();
    loop {
        let mut raw = Vec::new();
        let read = input
            .read_until(b'\n', &mut raw)
            .map_err(|err| ExitError::invalid_input(err.to_string()))?;
        if read == 0 || raw.last() != Some(&b'\n') {
            return Err(ExitError::invalid_input("EOF"));
        }
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim();
        if line.is_empty() {
            return Ok(items);
        }
        items.push(parse(line)?);
    }
}

/// etcdctl's `ParseCompare`: `<target>("<key>") <op> "<value>"`.
pub fn parse_compare(line: &str) -> CtlResult<Compare> {
    let malformed = || ExitError::invalid_input(format!("malformed comparison: {line}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed());
    };
    // fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
    let mut key = Vec::new();
    let mut op = String::new();
    let mut val = Vec::new();
    let mut scanned = 0;
    if let Some((k, after_key)) = gofmt::scan_quoted(rest) {
        key = k;
        if let Some(after_paren) = after_key.strip_prefix(')') {
            scanned = 1;
            let after_space = after_paren.trim_start_matches([' ', '\t', '\r']);
            let op_len = after_space
                .find([' ', '\t', '\r', '\n'])
                .unwrap_or(after_space.len());
            if op_len > 0 {
                op = after_space[..op_len].to_string();
                scanned = 2;
                if let Some((v, _)) = gofmt::scan_quoted(&after_space[op_len..]) {
                    val = v;
                    scanned = 3;
                }
            }
        }
    }
    if scanned != 3 {
        return Err(ExitError::invalid_input(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            gofmt::quote(&key),
            gofmt::quote(&val)
        )));
    }
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        // clientv3.Compare panics on anything else; report it instead.
        _ => {
            return Err(ExitError::invalid_input(format!(
                "malformed comparison: {line} (unknown result op {})",
                gofmt::quote(op.as_bytes())
            )))
        }
    };
    let invalid = || ExitError::invalid_input(format!("invalid txn compare request: {line}"));
    let val_text = String::from_utf8_lossy(&val).into_owned();
    let number = |base: u32| gofmt::parse_int(&val_text, base).map_err(|_| invalid());
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(number(10)?)),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(number(10)?),
        ),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(number(10)?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(val)),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(number(16)?)),
        _ => {
            return Err(ExitError::invalid_input(format!(
                "malformed comparison: {line} (unknown target {target})"
            )))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// etcdctl's `parseRequestUnion`: a `put`, `get` or `del` command line
/// (names may be abbreviated) with that command's own flags.
pub fn parse_request(line: &str) -> CtlResult<RequestOp> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(ExitError::invalid_input(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let invalid = || ExitError::invalid_input(format!("invalid txn request: {line}"));
    const NAMES: [&str; 3] = ["put", "get", "del"];
    let word = String::from_utf8_lossy(&args[0]).into_owned();
    let name = match NAMES.iter().find(|n| **n == word) {
        Some(n) => *n,
        None => {
            let mut matches = NAMES.iter().filter(|n| n.starts_with(word.as_str()));
            match (matches.next(), matches.next()) {
                (Some(n), None) => *n,
                _ => return Err(invalid()),
            }
        }
    };
    let specs: &[FlagSpec] = match name {
        "put" => PUT_FLAGS,
        "get" => GET_FLAGS,
        _ => DEL_FLAGS,
    };
    let mut flags = FlagSet::new(specs.iter().copied());
    let rest = &args[1..];
    let texts: Vec<String> = rest
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let positional: Vec<Vec<u8>> = flags
        .parse_indices(&texts)
        .map_err(|_| invalid())?
        .into_iter()
        .map(|i| rest[i].clone())
        .collect();
    let op = match name {
        "put" => Op::RequestPut(put::put_request(&flags, &positional, false)?),
        "get" => Op::RequestRange(get::range_request(&flags, &positional)?),
        _ => Op::RequestDeleteRange(del::delete_request(&flags, &positional)?),
    };
    Ok(RequestOp { request: Some(op) })
}

/// etcdctl's `Argify`: splits a line into words, where a word is a
/// double-quoted Go string literal, a single-quoted string, or a run of
/// non-space characters not starting with a quote. Words are raw bytes
/// because `"\xff"` escapes may produce any byte.
pub fn argify(line: &str) -> CtlResult<Vec<Vec<u8>>> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c == '"' {
            // "(?:[^"\\]|\\.)*"
            let mut j = i + 1;
            let mut end = None;
            while j < chars.len() {
                match chars[j].1 {
                    '"' => {
                        end = Some(j);
                        break;
                    }
                    '\\' if j + 1 < chars.len() && chars[j + 1].1 != '\n' => j += 2,
                    '\\' => break,
                    _ => j += 1,
                }
            }
            match end {
                Some(j) => {
                    let literal = &line[start..chars[j].0 + 1];
                    let bytes = gofmt::unquote(literal)
                        .ok_or_else(|| ExitError::invalid_input("invalid syntax"))?;
                    words.push(bytes);
                    i = j + 1;
                }
                None => i += 1,
            }
        } else if c == '\'' {
            // '[^']*'
            match chars[i + 1..].iter().position(|(_, c)| *c == '\'') {
                Some(offset) => {
                    let j = i + 1 + offset;
                    words.push(line.as_bytes()[start + 1..chars[j].0].to_vec());
                    i = j + 1;
                }
                None => i += 1,
            }
        } else if is_space(c) {
            i += 1;
        } else {
            // [^'"\s]\S*[^'"\s]?
            let mut j = i;
            while j < chars.len() && !is_space(chars[j].1) {
                j += 1;
            }
            let end = chars.get(j).map_or(line.len(), |(pos, _)| *pos);
            words.push(line.as_bytes()[start..end].to_vec());
            i = j;
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        argify(line)
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn argify_quotes() {
        assert_eq!(
            words(r#"put k2 "hello world""#),
            vec!["put", "k2", "hello world"]
        );
        assert_eq!(words("put k 'a b'"), vec!["put", "k", "a b"]);
        assert_eq!(words(r#"put k "a\"b""#), vec!["put", "k", "a\"b"]);
        assert_eq!(words("get  k1   --prefix"), vec!["get", "k1", "--prefix"]);
    }

    #[test]
    fn compares_parse() {
        let cmp = parse_compare(r#"mod("k1") > "3""#).unwrap();
        assert_eq!(cmp.key, b"k1");
        assert_eq!(cmp.target, CompareTarget::Mod as i32);
        assert_eq!(cmp.result, CompareResult::Greater as i32);
        assert_eq!(cmp.target_union, Some(TargetUnion::ModRevision(3)));
        let cmp = parse_compare(r#"value("k1") != "v1""#).unwrap();
        assert_eq!(cmp.target_union, Some(TargetUnion::Value(b"v1".to_vec())));
        assert_eq!(
            parse_compare(r#"value(k1) = "v1""#).unwrap_err().message,
            r#"malformed comparison: value(k1) = "v1"; got value("")  """#
        );
        assert_eq!(
            parse_compare("bogus").unwrap_err().message,
            "malformed comparison: bogus"
        );
        assert_eq!(
            parse_compare(r#"mod("k1") > "x""#).unwrap_err().message,
            r#"invalid txn compare request: mod("k1") > "x""#
        );
        let cmp = parse_compare(r#"lease("k") = "1f""#).unwrap();
        assert_eq!(cmp.target_union, Some(TargetUnion::Lease(31)));
    }

    #[test]
    fn requests_parse() {
        let op = parse_request(r#"put k2 "hello world" --prev-kv"#).unwrap();
        match op.request {
            Some(Op::RequestPut(p)) => {
                assert_eq!(p.value, b"hello world");
                assert!(p.prev_kv);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse_request("foo bar").unwrap_err().message,
            "invalid txn request: foo bar"
        );
        assert_eq!(
            parse_request("put").unwrap_err().message,
            "invalid txn compare request: put"
        );
    }
}
