//! Command-line flags with the syntax and error texts of spf13/pflag, which
//! etcdctl uses: `--name=value`, `--name value`, `-w json`, `-wjson`,
//! interspersed positionals, `--` to stop, bool flags without a value, and
//! string slices that replace their default on first use and append after.

use std::collections::BTreeMap;
use std::time::Duration;

use rsetcd::gofmt;

/// What a flag holds; decides parsing and how its default is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    Bool,
    String,
    Int64,
    Duration,
    StringSlice,
}

/// A flag definition, as `cmd.Flags().XxxVar(...)` declares it.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: FlagKind,
    /// The default in Go's textual form (`"2s"`, `"false"`, `"127.0.0.1:2379"`).
    pub default: &'static str,
    pub usage: &'static str,
}

impl FlagSpec {
    pub const fn new(
        name: &'static str,
        kind: FlagKind,
        default: &'static str,
        usage: &'static str,
    ) -> Self {
        FlagSpec {
            name,
            short: None,
            kind,
            default,
            usage,
        }
    }

    pub const fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }

    /// How pflag prints the default: slices as `[a,b]`.
    pub fn default_display(&self) -> String {
        match self.kind {
            FlagKind::StringSlice => format!("[{}]", self.default),
            _ => self.default.to_string(),
        }
    }

    /// The name pflag uses in "invalid argument" errors.
    fn display_name(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}, --{}", self.name),
            None => format!("--{}", self.name),
        }
    }
}

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    Bool(bool),
    Str(String),
    Int(i64),
    Dur(Duration),
    Slice(Vec<String>),
}

/// The flags one command accepts, with their current values.
#[derive(Debug, Clone)]
pub struct FlagSet {
    specs: Vec<FlagSpec>,
    values: BTreeMap<&'static str, FlagValue>,
    changed: BTreeMap<&'static str, bool>,
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `-h`/`--help` was given.
    Help,
    /// A pflag error message, e.g. `unknown flag: --bogus`.
    Invalid(String),
}

impl FlagSet {
    pub fn new(specs: impl IntoIterator<Item = FlagSpec>) -> Self {
        let mut set = FlagSet {
            specs: Vec::new(),
            values: BTreeMap::new(),
            changed: BTreeMap::new(),
        };
        for spec in specs {
            set.add(spec);
        }
        set
    }

    /// Adds a flag with its default value (later duplicates are ignored).
    pub fn add(&mut self, spec: FlagSpec) {
        if self.lookup(spec.name).is_some() {
            return;
        }
        let value = default_value(&spec);
        self.values.insert(spec.name, value);
        self.specs.push(spec);
    }

    pub fn lookup(&self, name: &str) -> Option<&FlagSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    fn lookup_short(&self, c: char) -> Option<&FlagSpec> {
        self.specs.iter().find(|s| s.short == Some(c))
    }

    pub fn changed(&self, name: &str) -> bool {
        self.changed.get(name).copied().unwrap_or(false)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(FlagValue::Bool(true)))
    }

    pub fn string(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(FlagValue::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(FlagValue::Int(v)) => *v,
            _ => 0,
        }
    }

    pub fn duration(&self, name: &str) -> Duration {
        match self.values.get(name) {
            Some(FlagValue::Dur(d)) => *d,
            _ => Duration::ZERO,
        }
    }

    pub fn slice(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(FlagValue::Slice(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The value's text as `--debug` prints it (`[a b]` for slices).
    pub fn value_text(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(FlagValue::Bool(b)) => b.to_string(),
            Some(FlagValue::Str(s)) => s.clone(),
            Some(FlagValue::Int(v)) => v.to_string(),
            Some(FlagValue::Dur(d)) => gofmt::format_duration(*d),
            Some(FlagValue::Slice(v)) => format!("[{}]", v.join(",")),
            None => String::new(),
        }
    }

    /// pflag's `Set`: parses `raw` into the flag and marks it changed.
    /// The error is the bare parse error (callers add their own context).
    pub fn set(&mut self, name: &str, raw: &str) -> Result<(), String> {
        let spec = *self
            .lookup(name)
            .ok_or_else(|| format!("no such flag -{name}"))?;
        let value = match spec.kind {
            FlagKind::Bool => FlagValue::Bool(gofmt::parse_bool(raw).map_err(|e| e.to_string())?),
            FlagKind::String => FlagValue::Str(raw.to_string()),
            FlagKind::Int64 => FlagValue::Int(gofmt::parse_int(raw, 0).map_err(|e| e.to_string())?),
            FlagKind::Duration => FlagValue::Dur(gofmt::parse_duration_saturating(raw)?),
            FlagKind::StringSlice => {
                let items = split_csv(raw);
                match (self.changed(spec.name), self.values.get(spec.name)) {
                    (true, Some(FlagValue::Slice(existing))) => {
                        let mut all = existing.clone();
                        all.extend(items);
                        FlagValue::Slice(all)
                    }
                    _ => FlagValue::Slice(items),
                }
            }
        };
        self.values.insert(spec.name, value);
        self.changed.insert(spec.name, true);
        Ok(())
    }

    fn set_from_arg(&mut self, spec: FlagSpec, raw: &str) -> Result<(), ParseError> {
        self.set(spec.name, raw).map_err(|err| {
            ParseError::Invalid(format!(
                "invalid argument {} for {} flag: {err}",
                gofmt::quote(raw.as_bytes()),
                gofmt::quote(spec.display_name().as_bytes())
            ))
        })
    }

    /// Parses `args`, returning the positional arguments in order.
    pub fn parse(&mut self, args: &[String]) -> Result<Vec<String>, ParseError> {
        let indices = self.parse_indices(args)?;
        Ok(indices.into_iter().map(|i| args[i].clone()).collect())
    }

    /// Parses `args`, returning the indices of the positional arguments, so
    /// callers holding the raw bytes of each argument can keep them exact.
    pub fn parse_indices(&mut self, args: &[String]) -> Result<Vec<usize>, ParseError> {
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg.len() < 2 || !arg.starts_with('-') {
                positional.push(i - 1);
                continue;
            }
            if arg == "--" {
                positional.extend(i..args.len());
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                if long.starts_with('-') || long.starts_with('=') {
                    return Err(ParseError::Invalid(format!("bad flag syntax: {arg}")));
                }
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(spec) = self.lookup(name).copied() else {
                    if name == "help" {
                        return Err(ParseError::Help);
                    }
                    return Err(ParseError::Invalid(format!("unknown flag: --{name}")));
                };
                let value = match inline {
                    Some(v) => v.to_string(),
                    None if spec.kind == FlagKind::Bool => "true".to_string(),
                    None if i < args.len() => {
                        i += 1;
                        args[i - 1].clone()
                    }
                    None => {
                        return Err(ParseError::Invalid(format!(
                            "flag needs an argument: {arg}"
                        )))
                    }
                };
                self.set_from_arg(spec, &value)?;
                if spec.name == "help" && self.bool("help") {
                    return Err(ParseError::Help);
                }
                continue;
            }
            // A group of shorthands: -abc, -wjson, -w=json, -w json.
            let mut shorts: &str = &arg[1..];
            while let Some(c) = shorts.chars().next() {
                let after = &shorts[c.len_utf8()..];
                let Some(spec) = self.lookup_short(c).copied() else {
                    if c == 'h' {
                        return Err(ParseError::Help);
                    }
                    return Err(ParseError::Invalid(format!(
                        "unknown shorthand flag: {} in -{shorts}",
                        gofmt::quote_char(c)
                    )));
                };
                let value;
                if let Some(v) = after.strip_prefix('=').filter(|_| after.len() > 1) {
                    value = v.to_string();
                    shorts = "";
                } else if spec.kind == FlagKind::Bool {
                    value = "true".to_string();
                    shorts = after;
                } else if !after.is_empty() {
                    value = after.to_string();
                    shorts = "";
                } else if i < args.len() {
                    value = args[i].clone();
                    i += 1;
                    shorts = "";
                } else {
                    return Err(ParseError::Invalid(format!(
                        "flag needs an argument: {} in -{shorts}",
                        gofmt::quote_char(c)
                    )));
                }
                self.set_from_arg(spec, &value)?;
                if spec.name == "help" && self.bool("help") {
                    return Err(ParseError::Help);
                }
            }
        }
        Ok(positional)
    }

    /// True when the flag takes no value (cobra's `hasNoOptDefVal`).
    pub fn is_bool(&self, name: &str) -> bool {
        self.lookup(name).is_some_and(|s| s.kind == FlagKind::Bool)
    }

    pub fn is_bool_short(&self, c: char) -> bool {
        self.lookup_short(c)
            .is_some_and(|s| s.kind == FlagKind::Bool)
    }
}

fn default_value(spec: &FlagSpec) -> FlagValue {
    match spec.kind {
        FlagKind::Bool => FlagValue::Bool(spec.default == "true"),
        FlagKind::String => FlagValue::Str(spec.default.to_string()),
        FlagKind::Int64 => FlagValue::Int(gofmt::parse_int(spec.default, 0).unwrap_or(0)),
        FlagKind::Duration => {
            FlagValue::Dur(gofmt::parse_duration_saturating(spec.default).unwrap_or(Duration::ZERO))
        }
        FlagKind::StringSlice => FlagValue::Slice(split_csv(spec.default)),
    }
}

/// pflag reads slice values as one CSV record.
fn split_csv(raw: &str) -> Vec<String> {
    if raw.is_empty() {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    items.push(current);
    items
}

/// The `-h, --help` flag cobra adds to every command; `usage` is
/// `help for <command>`.
pub const fn help_flag(usage: &'static str) -> FlagSpec {
    FlagSpec::new("help", FlagKind::Bool, "false", usage).short('h')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> FlagSet {
        FlagSet::new([
            FlagSpec::new("prefix", FlagKind::Bool, "false", ""),
            FlagSpec::new("limit", FlagKind::Int64, "0", ""),
            FlagSpec::new("write-out", FlagKind::String, "simple", "").short('w'),
            FlagSpec::new("endpoints", FlagKind::StringSlice, "127.0.0.1:2379", ""),
            help_flag("help for get"),
        ])
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_interspersed_flags() {
        let mut f = set();
        let pos = f
            .parse(&args(&["a", "--prefix", "--limit", "5", "-wjson", "b"]))
            .unwrap();
        assert_eq!(pos, vec!["a", "b"]);
        assert!(f.bool("prefix"));
        assert_eq!(f.int("limit"), 5);
        assert_eq!(f.string("write-out"), "json");
    }

    #[test]
    fn slices_replace_then_append() {
        let mut f = set();
        f.parse(&args(&["--endpoints=a,b", "--endpoints", "c"]))
            .unwrap();
        assert_eq!(f.slice("endpoints"), vec!["a", "b", "c"]);
    }

    #[test]
    fn errors_match_pflag() {
        let err = |a: &[&str]| set().parse(&args(a)).unwrap_err();
        assert_eq!(
            err(&["--bogus"]),
            ParseError::Invalid("unknown flag: --bogus".into())
        );
        assert_eq!(
            err(&["--limit"]),
            ParseError::Invalid("flag needs an argument: --limit".into())
        );
        assert_eq!(
            err(&["-w"]),
            ParseError::Invalid("flag needs an argument: 'w' in -w".into())
        );
        assert_eq!(
            err(&["-x"]),
            ParseError::Invalid("unknown shorthand flag: 'x' in -x".into())
        );
        assert_eq!(
            err(&["--limit", "abc"]),
            ParseError::Invalid(
                "invalid argument \"abc\" for \"--limit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax"
                    .into()
            )
        );
        assert_eq!(err(&["-h"]), ParseError::Help);
        assert_eq!(
            set().parse(&args(&["--", "--prefix"])).unwrap(),
            vec!["--prefix"]
        );
    }
}
