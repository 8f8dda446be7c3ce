//! Go's `strconv.ParseUint`, `ParseInt` and `ParseBool`, with their errors.
//!
//! etcd parses flags with these, and users' scripts rely on their exact
//! rules (base prefixes such as `0x10`, `1_000`, `t`/`F` booleans), so they
//! are reproduced rather than using Rust's stricter parsers.

use std::fmt;

use super::quote::quote;

/// Why a value could not be parsed (Go's `strconv.ErrSyntax` / `ErrRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumErrorKind {
    Syntax,
    Range,
}

/// Go's `*strconv.NumError`: prints as
/// `strconv.ParseInt: parsing "abc": invalid syntax`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumError {
    func: &'static str,
    input: String,
    kind: NumErrorKind,
}

impl NumError {
    fn new(func: &'static str, input: &str, kind: NumErrorKind) -> Self {
        NumError {
            func,
            input: input.to_string(),
            kind,
        }
    }

    pub fn kind(&self) -> NumErrorKind {
        self.kind
    }
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            NumErrorKind::Syntax => "invalid syntax",
            NumErrorKind::Range => "value out of range",
        };
        write!(
            f,
            "strconv.{}: parsing {}: {why}",
            self.func,
            quote(self.input.as_bytes())
        )
    }
}

impl std::error::Error for NumError {}

/// `strconv.ParseUint(s, base, bits)`. Base 0 takes the base from the
/// prefix (`0b`, `0o`, `0x`, or a leading `0` for octal) and allows
/// underscores between digits; bases 2 to 36 take bare digits.
pub fn parse_uint(s: &str, base: u32, bits: u32) -> Result<u64, NumError> {
    let fail = |kind| NumError::new("ParseUint", s, kind);
    if s.is_empty() || !(base == 0 || (2..=36).contains(&base)) {
        return Err(fail(NumErrorKind::Syntax));
    }
    let (radix, digits) = if base == 0 {
        split_base_prefix(s)
    } else {
        (base, s)
    };
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut value: u64 = 0;
    let mut underscores = false;
    for c in digits.chars() {
        if c == '_' && base == 0 {
            underscores = true;
            continue;
        }
        let digit = c
            .to_digit(radix)
            .ok_or_else(|| fail(NumErrorKind::Syntax))?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .filter(|v| *v <= max)
            .ok_or_else(|| fail(NumErrorKind::Range))?;
    }
    if underscores && !underscores_ok(s) {
        return Err(fail(NumErrorKind::Syntax));
    }
    Ok(value)
}

/// `strconv.ParseInt(s, base, 64)`; base as for [`parse_uint`].
pub fn parse_int(s: &str, base: u32) -> Result<i64, NumError> {
    let fail = |kind| NumError::new("ParseInt", s, kind);
    let (negative, magnitude) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let unsigned = parse_uint(magnitude, base, 64).map_err(|e| fail(e.kind))?;
    if negative {
        if unsigned > i64::MAX as u64 + 1 {
            return Err(fail(NumErrorKind::Range));
        }
        Ok((unsigned as i64).wrapping_neg())
    } else {
        i64::try_from(unsigned).map_err(|_| fail(NumErrorKind::Range))
    }
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, NumError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(NumError::new("ParseBool", s, NumErrorKind::Syntax)),
    }
}

/// Go's base-0 prefix rules: 0b, 0o, 0x, or a leading 0 for octal.
fn split_base_prefix(s: &str) -> (u32, &str) {
    let b = s.as_bytes();
    if b.first() != Some(&b'0') {
        return (10, s);
    }
    if b.len() >= 3 {
        match b[1].to_ascii_lowercase() {
            b'b' => return (2, &s[2..]),
            b'o' => return (8, &s[2..]),
            b'x' => return (16, &s[2..]),
            _ => {}
        }
    }
    (8, &s[1..])
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint_kind(s: &str, bits: u32) -> Result<u64, NumErrorKind> {
        parse_uint(s, 0, bits).map_err(|e| e.kind())
    }

    fn int_kind(s: &str) -> Result<i64, NumErrorKind> {
        parse_int(s, 0).map_err(|e| e.kind())
    }

    #[test]
    fn uint_accepts_go_bases_and_underscores() {
        assert_eq!(uint_kind("100", 64), Ok(100));
        assert_eq!(uint_kind("0x64", 64), Ok(100));
        assert_eq!(uint_kind("0o144", 64), Ok(100));
        assert_eq!(uint_kind("0144", 64), Ok(100));
        assert_eq!(uint_kind("0b1100100", 64), Ok(100));
        assert_eq!(uint_kind("1_000", 64), Ok(1000));
        assert_eq!(uint_kind("0", 64), Ok(0));
        assert_eq!(uint_kind("00", 64), Ok(0));
    }

    #[test]
    fn uint_rejects_what_go_rejects() {
        for bad in [
            "", "abc", "-1", "+1", "1_", "_1", "1__0", "0x", "08", "1.5", " 1",
        ] {
            assert_eq!(uint_kind(bad, 64), Err(NumErrorKind::Syntax), "{bad}");
        }
        assert_eq!(
            uint_kind("18446744073709551616", 64),
            Err(NumErrorKind::Range)
        );
        assert_eq!(uint_kind("4294967296", 32), Err(NumErrorKind::Range));
        assert_eq!(uint_kind("4294967295", 32), Ok(u64::from(u32::MAX)));
    }

    #[test]
    fn int_handles_signs_and_range() {
        assert_eq!(int_kind("-5"), Ok(-5));
        assert_eq!(int_kind("+5"), Ok(5));
        assert_eq!(int_kind("-0x10"), Ok(-16));
        assert_eq!(int_kind("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(int_kind("9223372036854775808"), Err(NumErrorKind::Range));
        assert_eq!(int_kind("--5"), Err(NumErrorKind::Syntax));
    }

    #[test]
    fn explicit_bases_take_bare_digits() {
        assert_eq!(parse_int("010", 0), Ok(8));
        assert_eq!(parse_int("-5", 10), Ok(-5));
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert!(parse_int("0x10", 16).is_err());
        assert!(parse_int("1_0", 10).is_err());
    }

    #[test]
    fn errors_print_like_go() {
        assert_eq!(
            parse_int("abc", 10).unwrap_err().to_string(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert!(parse_int("99999999999999999999", 10)
            .unwrap_err()
            .to_string()
            .ends_with("value out of range"));
        assert_eq!(
            parse_uint("4294967296", 0, 32).unwrap_err().to_string(),
            "strconv.ParseUint: parsing \"4294967296\": value out of range"
        );
        assert_eq!(
            parse_bool("yes").unwrap_err().to_string(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn bool_matches_strconv() {
        assert_eq!(parse_bool("T"), Ok(true));
        assert_eq!(parse_bool("False"), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("tRuE").is_err());
    }
}
