//! JSON values read one after another from a request body as it arrives
//! (the watch's and keep-alive's request objects, which Go's json.Decoder
//! reads one by one, with any whitespace or none between them).
//!
//! Bytes are scanned once, with the nesting, string and escape state kept
//! across body frames, and serde parses a value only once it is whole: a
//! value sent a byte at a time costs linear, not quadratic, work.

use axum::body::Body;
use http_body_util::BodyExt as _;

pub struct JsonValues {
    body: Body,
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned, and the state after them.
    scanned: usize,
    scan: Scan,
    max: usize,
    ended: bool,
}

#[derive(Default, Clone, Copy)]
struct Scan {
    /// Where the value being scanned starts in `buf`.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The value is a bare scalar (a number or a literal): it ends at the
    /// next delimiter.
    scalar: bool,
}

/// What one step of the scan found.
enum Found {
    /// A whole value in `buf[start..end]`.
    Value(usize, usize),
    /// More bytes are needed.
    More,
}

impl JsonValues {
    pub fn new(body: Body, max: usize) -> JsonValues {
        JsonValues {
            body,
            buf: Vec::new(),
            scanned: 0,
            scan: Scan::default(),
            max,
            ended: false,
        }
    }

    /// The next value; `None` at the end of the body; an error (Go's
    /// words where it has them) for bytes that are not JSON.
    pub async fn next(&mut self) -> Result<Option<serde_json::Value>, String> {
        loop {
            if let Found::Value(start, end) = self.scan_on() {
                let value = serde_json::from_slice(&self.buf[start..end])
                    .map_err(|e| super::json::go_json_error(&self.buf[start..end], &e))?;
                self.buf.drain(..end);
                self.scanned = 0;
                self.scan = Scan::default();
                return Ok(Some(value));
            }
            if self.ended {
                return match self.scan.start {
                    None => Ok(None),
                    Some(_) => Err("unexpected EOF".into()),
                };
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        if self.buf.len() + data.len() > self.max {
                            return Err(format!(
                                "a request object of more than {} bytes",
                                self.max
                            ));
                        }
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
    }

    /// Scans the bytes not scanned yet.
    fn scan_on(&mut self) -> Found {
        let s = &mut self.scan;
        while self.scanned < self.buf.len() {
            let at = self.scanned;
            let c = self.buf[at];
            self.scanned += 1;
            let Some(start) = s.start else {
                if c.is_ascii_whitespace() {
                    continue;
                }
                s.start = Some(at);
                match c {
                    b'{' | b'[' => s.depth = 1,
                    b'"' => s.in_string = true,
                    _ => s.scalar = true,
                }
                continue;
            };
            if s.scalar {
                if c.is_ascii_whitespace() || matches!(c, b'{' | b'[' | b'"' | b'}' | b']' | b',') {
                    self.scanned = at; // the delimiter starts what follows
                    return Found::Value(start, at);
                }
                continue;
            }
            if s.in_string {
                if s.escaped {
                    s.escaped = false;
                } else if c == b'\\' {
                    s.escaped = true;
                } else if c == b'"' {
                    s.in_string = false;
                    if s.depth == 0 {
                        return Found::Value(start, at + 1);
                    }
                }
                continue;
            }
            match c {
                b'"' => s.in_string = true,
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' => {
                    s.depth -= 1;
                    if s.depth == 0 {
                        return Found::Value(start, at + 1);
                    }
                }
                _ => {}
            }
        }
        // a bare scalar at the very end of the body is whole
        match s.start {
            Some(start) if s.scalar && self.ended => Found::Value(start, self.buf.len()),
            _ => Found::More,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `chunks` sent as separate body frames.
    async fn values(chunks: &[&str]) -> Vec<Result<serde_json::Value, String>> {
        let owned: Vec<Result<bytes::Bytes, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(bytes::Bytes::from(c.to_string())))
            .collect();
        let body = Body::from_stream(futures::stream::iter(owned));
        let mut v = JsonValues::new(body, 1 << 20);
        let mut out = Vec::new();
        loop {
            match v.next().await {
                Ok(None) => return out,
                Ok(Some(x)) => out.push(Ok(x)),
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn values_split_anywhere_come_out_whole() {
        let text = r#"{"a":"}{\"","b":[1,{"c":2}]} {"d":1}{"e":"x"} 7 null"#;
        let whole = values(&[text]).await;
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let one_by_one: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(values(&one_by_one).await, whole);
        let parsed: Vec<serde_json::Value> = whole.into_iter().map(Result::unwrap).collect();
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[0]["a"], "}{\"");
        assert_eq!(parsed[3], 7);
        assert!(parsed[4].is_null());
    }

    #[tokio::test]
    async fn a_cut_or_broken_value_is_an_error() {
        assert_eq!(
            values(&[r#"{"a":"#]).await,
            vec![Err("unexpected EOF".into())]
        );
        let broken = values(&["hello"]).await;
        assert_eq!(
            broken,
            vec![Err(
                "invalid character 'h' looking for beginning of value".into()
            )]
        );
        assert!(values(&["   "]).await.is_empty());
    }
}
