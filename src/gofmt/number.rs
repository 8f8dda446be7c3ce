//! Go's number formatting: `%g` for floats and go-humanize's byte sizes.

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

/// go-humanize's `Bytes` (SI units): `20 kB`, `1.2 MB`, `7 B`.
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let exp = ((size as f64).ln() / 1000f64.ln()).floor() as i32;
    let unit = UNITS[exp.clamp(0, 6) as usize];
    let value = ((size as f64 / 1000f64.powi(exp)) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{} {unit}", round_half_even(value, 1))
    } else {
        format!("{} {unit}", round_half_even(value, 0))
    }
}

/// Formats like Go's `%.Nf`, which rounds an exact tie to even.
fn round_half_even(value: f64, decimals: usize) -> String {
    let scale = 10f64.powi(decimals as i32);
    let scaled = value * scale;
    let floor = scaled.floor();
    let rounded = if (scaled - floor - 0.5).abs() < 1e-9 {
        if floor % 2.0 == 0.0 {
            floor
        } else {
            floor + 1.0
        }
    } else {
        scaled.round()
    };
    format!("{:.*}", decimals, rounded / scale)
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
    fn humanize_like_go() {
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(7), "7 B");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(25_000), "25 kB");
    }
}
