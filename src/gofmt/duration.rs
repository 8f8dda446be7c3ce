//! Go's `time.ParseDuration` and `time.Duration.String()`.

use std::fmt::Write as _;
use std::time::Duration;

/// Go's `time.ParseDuration`: signed nanoseconds, or Go's error text.
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut s = orig;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_digits = &s[..int_len];
        s = &s[int_len..];
        let mut whole: u64 = 0;
        for d in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for d in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                // Like Go, stop accumulating precision once it would overflow.
                match frac
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                    .filter(|v| *v <= 1 << 63)
                {
                    Some(v) => {
                        frac = v;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_nanos: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit),
                    quote(orig)
                ))
            }
        };
        let mut v = whole.checked_mul(unit_nanos).ok_or_else(invalid)?;
        if v > 1 << 63 {
            return Err(invalid());
        }
        if frac > 0 {
            v += (frac as f64 * (unit_nanos as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > 1 << 63 {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// The `time` package's own quoting in its errors: like `%q` for ASCII,
/// but every byte of a non-ASCII or control character as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// [`parse_duration`] for timeouts and intervals, where a negative value
/// means the same as zero: a deadline already passed, or "disabled".
pub fn parse_duration_saturating(s: &str) -> Result<Duration, String> {
    let nanos = parse_duration(s)?;
    Ok(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
}

/// Go's `time.Duration.String()`, e.g. `2s`, `1.5ms`, `1m30s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    out.push_str(&fraction(secs * 1_000_000_000 + sub, 1_000_000_000));
    out.push('s');
    out
}

/// `value / unit` with the remainder as trailing-zero-trimmed decimals.
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rem = value % unit;
    if rem == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Result<Duration, String> {
        parse_duration_saturating(s)
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parsed("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parsed("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parsed("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parsed("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parsed("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parsed(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parsed("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parsed("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(parsed("0"), Ok(Duration::ZERO));
        assert_eq!(parsed("+0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parsed("-1s"), Ok(Duration::ZERO));
        assert!(parsed("").is_err());
        assert!(parsed(".s").is_err());
        assert!(parsed("3000000h").is_err());
    }

    #[test]
    fn duration_errors_read_like_go() {
        assert_eq!(parsed("abc"), Err("time: invalid duration \"abc\"".into()));
        assert_eq!(
            parsed("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parsed("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        // Seen from etcdctl 3.4: the time package escapes non-ASCII bytes.
        assert_eq!(
            parsed("5éx"),
            Err("time: unknown unit \"\\xc3\\xa9x\" in duration \"5\\xc3\\xa9x\"".into())
        );
        assert_eq!(
            parsed("5\tx"),
            Err("time: unknown unit \"\\x09x\" in duration \"5\\x09x\"".into())
        );
        assert_eq!(
            parsed("x\"y"),
            Err("time: invalid duration \"x\\\"y\"".into())
        );
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(812)), "812ns");
        assert_eq!(format_duration(Duration::from_nanos(160_129)), "160.129µs");
        assert_eq!(format_duration(Duration::from_nanos(474_510)), "474.51µs");
        assert_eq!(
            format_duration(Duration::from_nanos(1_603_857)),
            "1.603857ms"
        );
        assert_eq!(format_duration(Duration::from_millis(2)), "2ms");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_duration(Duration::from_millis(61_500)), "1m1.5s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m3s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h0m0s");
    }
}
