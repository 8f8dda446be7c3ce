//! Go's string literals: `strconv.Quote` (what `%q` prints) and its
//! inverse, and `encoding/json`'s string escaping.

use std::fmt::Write as _;

/// Go's `strconv.Quote` of a byte string (what `%q` prints).
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode_rune(rest) {
            Some((c, len)) => {
                quote_rune_into(&mut out, c);
                rest = &rest[len..];
            }
            None => {
                let _ = write!(out, "\\x{:02x}", rest[0]);
                rest = &rest[1..];
            }
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a single rune (`'x'`), used in flag error messages.
pub fn quote_char(c: char) -> String {
    let mut out = String::from("'");
    match c {
        '\'' => out.push_str("\\'"),
        '"' => out.push('"'),
        _ => quote_rune_into(&mut out, c),
    }
    out.push('\'');
    out
}

fn quote_rune_into(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Decodes one UTF-8 rune the way Go does: `None` for an invalid byte.
fn decode_rune(bytes: &[u8]) -> Option<(char, usize)> {
    let len = match bytes[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let chunk = bytes.get(..len)?;
    let s = std::str::from_utf8(chunk).ok()?;
    s.chars().next().map(|c| (c, len))
}

/// Approximates Go's `unicode.IsPrint`: graphic characters and ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    // Format characters, private use and non-characters are not printable.
    !matches!(u,
        0x00ad | 0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f
        | 0xd800..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0xfffe | 0xffff
        | 0xf0000..=0x10ffff)
}

/// Reads one Go-quoted string (`"..."` or a back-quoted raw string) after
/// optional leading spaces, as `fmt.Sscanf("%q")` does. Returns the unquoted
/// bytes and the input that follows, or `None` when there is no valid one.
pub fn scan_quoted(input: &str) -> Option<(Vec<u8>, &str)> {
    let s = input.trim_start_matches([' ', '\t', '\r']);
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '`')) => {
            let end = s[1..].find('`')? + 1;
            Some((s.as_bytes()[1..end].to_vec(), &s[end + 1..]))
        }
        Some((_, '"')) => {
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    let value = unquote(&s[..=i])?;
                    return Some((value, &s[i + 1..]));
                }
            }
            None
        }
        _ => None,
    }
}

/// Go's `strconv.Unquote` for a double-quoted literal, yielding raw bytes
/// (escapes such as `\xff` may produce invalid UTF-8, as Go strings allow).
pub fn unquote(literal: &str) -> Option<Vec<u8>> {
    let body = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '"' {
            return None;
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let esc = chars.next()?;
        match esc {
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(0x0b),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => {
                let hex: String = (0..2).filter_map(|_| chars.next()).collect();
                out.push(
                    u8::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 2)?,
                );
            }
            '0'..='7' => {
                let mut digits = String::from(esc);
                for _ in 0..2 {
                    digits.push(chars.next()?);
                }
                let v = u32::from_str_radix(&digits, 8).ok()?;
                out.push(u8::try_from(v).ok()?);
            }
            'u' | 'U' => {
                let n = if esc == 'u' { 4 } else { 8 };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                if hex.len() != n {
                    return None;
                }
                let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Go's `encoding/json` string encoding (HTML-safe escapes included).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote(b"foo"), "\"foo\"");
        assert_eq!(quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote(&[0x00, 0xff, b'x']), "\"\\x00\\xffx\"");
        assert_eq!(quote("héllo".as_bytes()), "\"héllo\"");
        assert_eq!(quote("\u{a0}".as_bytes()), "\"\\u00a0\"");
        assert_eq!(quote_char('x'), "'x'");
    }

    #[test]
    fn unquote_and_scan() {
        assert_eq!(unquote("\"a\\x41\\n\"").as_deref(), Some(&b"aA\n"[..]));
        assert_eq!(unquote("\"bad"), None);
        let (v, rest) = scan_quoted("  \"k1\") > \"3\"").unwrap();
        assert_eq!(v, b"k1");
        assert_eq!(rest, ") > \"3\"");
        assert!(scan_quoted("k1)").is_none());
    }

    #[test]
    fn json_escapes_like_go() {
        assert_eq!(
            json_string("a<b>&\"\n"),
            "\"a\\u003cb\\u003e\\u0026\\\"\\n\""
        );
    }
}
