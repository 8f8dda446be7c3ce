//! Go formatting and parsing conventions that etcd's benchmark output and
//! flags rely on: `%g` for floats (`--precise`), `time.Duration.String()`
//! (the `--sample` time series) and `time.ParseDuration` (duration flags).

use std::time::Duration;

/// Formats `value` like Go's `fmt.Sprintf("%g", value)`: the shortest
/// representation that round-trips, switching to exponent form when the
/// decimal exponent is below -4 or at least 6 (Go's rule for shortest `%g`).
pub fn format_g(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:e}` yields the same shortest round-trip digits as Go, as
    // "d.ddddde-N"; only the layout differs.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's {:e} float format always contains 'e'");
    let exponent: i32 = exponent
        .parse()
        .expect("Rust's {:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if value.is_sign_negative() && value != 0.0 {
        "-"
    } else {
        ""
    };

    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }

    // Position of the decimal point relative to the start of `digits`.
    let point = exponent + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int_part, frac_part) = digits.split_at(point as usize);
        format!("{int_part}.{frac_part}")
    };
    format!("{sign}{body}")
}

/// Formats a duration like Go's `time.Duration.String()`: "0s", "812ns",
/// "160.129µs", "1.299797ms", "2m3.5s".
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }
    let total_secs = nanos / 1_000_000_000;
    let seconds = decimal(nanos % 60_000_000_000, 9);
    let minutes = (total_secs / 60) % 60;
    let hours = total_secs / 3600;
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / 10^scale` in decimal, without trailing fractional zeros.
fn decimal(value: u128, scale: u32) -> String {
    let divisor = 10u128.pow(scale);
    let int_part = value / divisor;
    let frac = value % divisor;
    if frac == 0 {
        return int_part.to_string();
    }
    let frac = format!("{frac:0width$}", width = scale as usize);
    format!("{int_part}.{}", frac.trim_end_matches('0'))
}

/// Parses a duration the way Go's `time.ParseDuration` does ("5m", "1h30m",
/// "1.5s", "300ms", "0"). Negative durations come back as zero: every
/// duration flag here treats "not positive" as "disabled".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let (number, after_number) = rest.split_at(number_len);
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{text}\""
                ))
            }
        };
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut nanos = int_value.checked_mul(unit_nanos).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Digits beyond nanosecond resolution of the unit do not matter.
            let frac_digits = &frac_part[..frac_part.len().min(18)];
            let frac_value: u128 = frac_digits.parse().map_err(|_| invalid())?;
            nanos += frac_value * unit_nanos / 10u128.pow(frac_digits.len() as u32);
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(invalid)?;
        rest = after_unit;
    }
    if total_nanos > i64::MAX as u128 {
        return Err(invalid());
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go_for_latencies_and_rates() {
        // Expected strings come from a real run of etcd's benchmark --precise.
        assert_eq!(format_g(0.000160129), "0.000160129");
        assert_eq!(format_g(0.0012997978306666623), "0.0012997978306666623");
        assert_eq!(format_g(7655.917975597262), "7655.917975597262");
        assert_eq!(format_g(0.0027744037000000006), "0.0027744037000000006");
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(1.0), "1");
        assert_eq!(format_g(123456.0), "123456");
        assert_eq!(format_g(1234567.0), "1.234567e+06");
        assert_eq!(format_g(0.00001234), "1.234e-05");
        assert_eq!(format_g(0.0001), "0.0001");
        assert_eq!(format_g(-2.5), "-2.5");
        assert_eq!(format_g(f64::NAN), "NaN");
    }

    #[test]
    fn duration_string_matches_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(812)), "812ns");
        assert_eq!(format_duration(Duration::from_nanos(160_129)), "160.129µs");
        assert_eq!(
            format_duration(Duration::from_nanos(1_299_797)),
            "1.299797ms"
        );
        assert_eq!(format_duration(Duration::from_millis(2)), "2ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m3s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn parse_duration_accepts_go_syntax() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("-1s"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
