//! URL lists as etcd parses and checks them.
//!
//! etcd uses Go's `net/url` plus its own rules (`types.NewURLs`,
//! `checkBindURLs`, `checkHostURLs`). The `url` crate normalises URLs
//! differently (it drops default ports, adds a trailing `/`), so the checks
//! here work on the text as Go would see it and only then build a `url::Url`.

use std::net::IpAddr;

use url::Url;

/// A URL accepted by etcd's rules, with the Go views etcd's checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcdUrl {
    pub url: Url,
    /// What Go's `url.String()` prints (used in etcd's messages and for sorting).
    pub text: String,
    /// Go's `url.Host`: `host:port` exactly as written, brackets kept.
    pub host: String,
    pub scheme: String,
}

/// Go's `types.NewURLs`: every item must be an http(s) URL with host:port and
/// no path, or a unix(s) URL. The result is sorted by text, as etcd does.
pub(crate) fn parse_url_list<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<EtcdUrl>, String> {
    let mut urls = Vec::new();
    for item in items {
        urls.push(parse_one(item)?);
    }
    if urls.is_empty() {
        return Err("no valid URLs given".to_string());
    }
    urls.sort_by(|a, b| a.text.cmp(&b.text));
    Ok(urls)
}

/// `types.NewURLs` as a check alone: etcd's client runs it on peer URLs
/// before `MemberAdd` and `MemberUpdate` and reports its error verbatim.
pub fn check_url_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    parse_url_list(items).map(|_| ())
}

/// etcd's `UniqueURLs` flag value: a comma-separated list, sorted, duplicates dropped.
pub(crate) fn parse_unique_url_flag(value: &str) -> Result<Vec<EtcdUrl>, String> {
    let mut urls = parse_url_list(value.split(','))?;
    urls.dedup_by(|a, b| a.text == b.text);
    Ok(urls)
}

/// etcd's `checkBindURLs`: listeners need an IP address (or `localhost`).
pub(crate) fn check_bind_urls(urls: &[EtcdUrl]) -> Result<(), String> {
    for u in urls {
        if u.scheme == "unix" || u.scheme == "unixs" {
            continue;
        }
        let (host, _) = split_host_port(&u.host)?;
        if host == "localhost" {
            continue;
        }
        if host.parse::<IpAddr>().is_err() {
            return Err(format!("expected IP in URL for binding ({})", u.text));
        }
    }
    Ok(())
}

/// etcd's `checkHostURLs`: advertised URLs need a non-empty host and a port.
pub(crate) fn check_host_urls(urls: &[EtcdUrl]) -> Result<(), String> {
    for u in urls {
        let (host, _) = split_host_port(&u.host)?;
        if host.is_empty() {
            return Err(format!("unexpected empty host ({})", u.text));
        }
    }
    Ok(())
}

/// Go's `net.SplitHostPort`, with its error texts.
pub(crate) fn split_host_port(hostport: &str) -> Result<(&str, &str), String> {
    let addr_err = |why: &str| {
        if hostport.is_empty() {
            why.to_string()
        } else {
            format!("address {hostport}: {why}")
        }
    };
    let Some(last_colon) = hostport.rfind(':') else {
        return Err(addr_err("missing port in address"));
    };
    let (host, skip_open, skip_close) = if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err(addr_err("missing ']' in address"));
        };
        if end + 1 == hostport.len() {
            return Err(addr_err("missing port in address"));
        }
        if end + 1 != last_colon {
            if hostport.as_bytes()[end + 1] == b':' {
                return Err(addr_err("too many colons in address"));
            }
            return Err(addr_err("missing port in address"));
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..last_colon];
        if host.contains(':') {
            return Err(addr_err("too many colons in address"));
        }
        (host, 0, 0)
    };
    if hostport[skip_open..].contains('[') {
        return Err(addr_err("unexpected '[' in address"));
    }
    if hostport[skip_close..].contains(']') {
        return Err(addr_err("unexpected ']' in address"));
    }
    Ok((host, &hostport[last_colon + 1..]))
}

/// Renders a URL the way etcd (Go) prints it: no trailing `/` for an empty
/// path, and the port always shown for http(s), where etcd requires one.
pub fn url_to_string(url: &Url) -> String {
    let mut out = format!("{}:", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str("//");
        if !url.username().is_empty() {
            out.push_str(url.username());
            if let Some(password) = url.password() {
                out.push(':');
                out.push_str(password);
            }
            out.push('@');
        }
        out.push_str(host);
        if let Some(port) = url.port_or_known_default() {
            out.push_str(&format!(":{port}"));
        }
    } else if url.as_str()[url.scheme().len() + 1..].starts_with("//") {
        out.push_str("//");
    }
    let path = url.path();
    if !(path == "/" && url.host_str().is_some()) {
        out.push_str(path);
    }
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = url.fragment() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// One URL through Go's `url.Parse` rules and then `NewURLs`' scheme checks.
fn parse_one(item: &str) -> Result<EtcdUrl, String> {
    let s = item.trim();
    let parse_err = |why: &str| format!("parse {s:?}: {why}");
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(parse_err("net/url: invalid control character in URL"));
    }
    let without_fragment = s.split_once('#').map_or(s, |(before, _)| before);
    let (scheme, rest) = split_scheme(without_fragment).map_err(parse_err)?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);

    let mut host = String::new();
    let mut path = "";
    if rest.starts_with("//") && (!scheme.is_empty() || !rest.starts_with("///")) {
        let authority_and_path = &rest[2..];
        let (authority, after) = match authority_and_path.find('/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, ""),
        };
        path = after;
        let host_part = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        check_go_host(host_part).map_err(|why| parse_err(&why))?;
        host = host_part.to_string();
    } else if rest.starts_with('/') || scheme.is_empty() {
        if scheme.is_empty() && !rest.starts_with('/') {
            let first_segment = rest.split('/').next().unwrap_or_default();
            if first_segment.contains(':') {
                return Err(parse_err("first path segment in URL cannot contain colon"));
            }
        }
        path = rest;
    }

    match scheme.as_str() {
        "http" | "https" => {
            if split_host_port(&host).is_err() {
                return Err(format!(
                    "URL address does not have the form \"host:port\": {s}"
                ));
            }
            if !path.is_empty() {
                return Err(format!("URL must not contain a path: {s}"));
            }
        }
        "unix" | "unixs" => {}
        _ => {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {s}"
            ))
        }
    }
    let url = Url::parse(s).map_err(|e| parse_err(&e.to_string()))?;
    Ok(EtcdUrl {
        url,
        text: format!("{scheme}{}", &s[scheme.len()..]),
        host,
        scheme,
    })
}

/// Go's `getScheme`: a scheme is letters then letters/digits/`+-.`, ended by `:`.
fn split_scheme(raw: &str) -> Result<(&str, &str), &'static str> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            ':' => {
                if i == 0 {
                    return Err("missing protocol scheme");
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `parseHost` port checks ("invalid port ... after host").
fn check_go_host(host: &str) -> Result<(), String> {
    let colon_port = if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".to_string());
        };
        &host[end + 1..]
    } else {
        match host.rfind(':') {
            Some(i) => &host[i..],
            None => "",
        }
    };
    let valid = colon_port.is_empty()
        || colon_port.starts_with(':') && colon_port[1..].bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!("invalid port {colon_port:?} after host"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse_unique_url_flag(s).unwrap_err()
    }

    #[test]
    fn accepts_etcd_urls_and_sorts_them() {
        let urls = parse_unique_url_flag("http://127.0.0.1:2379,http://10.0.0.1:2379").unwrap();
        let texts: Vec<_> = urls.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(texts, ["http://10.0.0.1:2379", "http://127.0.0.1:2379"]);
        assert_eq!(urls[0].host, "10.0.0.1:2379");
        let dup = parse_unique_url_flag("http://a:1,http://a:1").unwrap();
        assert_eq!(dup.len(), 1);
        assert!(parse_unique_url_flag("unix://localhost:2379").is_ok());
        assert!(parse_unique_url_flag("https://[::1]:2379").is_ok());
        assert!(parse_unique_url_flag(" http://localhost:2379 ").is_ok());
    }

    #[test]
    fn rejects_like_etcd() {
        assert_eq!(
            err("abc"),
            "URL scheme must be http, https, unix, or unixs: abc"
        );
        assert_eq!(
            err("localhost:2379"),
            "URL scheme must be http, https, unix, or unixs: localhost:2379"
        );
        assert_eq!(
            err("127.0.0.1:2379"),
            "parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon"
        );
        assert_eq!(
            err("http://127.0.0.1"),
            "URL address does not have the form \"host:port\": http://127.0.0.1"
        );
        assert_eq!(
            err("http://127.0.0.1:2379/x"),
            "URL must not contain a path: http://127.0.0.1:2379/x"
        );
        assert_eq!(
            err("http://127.0.0.1:2379/"),
            "URL must not contain a path: http://127.0.0.1:2379/"
        );
        assert_eq!(
            err("http://h:abc"),
            "parse \"http://h:abc\": invalid port \":abc\" after host"
        );
        assert_eq!(err(""), "URL scheme must be http, https, unix, or unixs: ");
        assert_eq!(err("://x"), "parse \"://x\": missing protocol scheme");
    }

    #[test]
    fn bind_urls_need_ip_or_localhost() {
        let ok =
            parse_unique_url_flag("http://localhost:2379,http://0.0.0.0:1,http://[::]:2").unwrap();
        assert_eq!(check_bind_urls(&ok), Ok(()));
        let named = parse_unique_url_flag("http://example.com:2379").unwrap();
        assert_eq!(
            check_bind_urls(&named),
            Err("expected IP in URL for binding (http://example.com:2379)".to_string())
        );
        assert_eq!(check_host_urls(&named), Ok(()));
    }

    #[test]
    fn split_host_port_matches_go() {
        assert_eq!(split_host_port("h:1"), Ok(("h", "1")));
        assert_eq!(split_host_port("[::1]:1"), Ok(("::1", "1")));
        assert_eq!(split_host_port(":1"), Ok(("", "1")));
        assert_eq!(
            split_host_port("h"),
            Err("address h: missing port in address".to_string())
        );
        assert_eq!(
            split_host_port("a:b:c"),
            Err("address a:b:c: too many colons in address".to_string())
        );
        assert_eq!(
            split_host_port(""),
            Err("missing port in address".to_string())
        );
    }

    #[test]
    fn renders_like_go() {
        let u = Url::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!(url_to_string(&u), "http://127.0.0.1:2379");
        let u = Url::parse("http://127.0.0.1:80").unwrap();
        assert_eq!(url_to_string(&u), "http://127.0.0.1:80");
        let u = Url::parse("unix://localhost:1234").unwrap();
        assert_eq!(url_to_string(&u), "unix://localhost:1234");
        let u = Url::parse("unix:///tmp/etcd.sock").unwrap();
        assert_eq!(url_to_string(&u), "unix:///tmp/etcd.sock");
    }
}
