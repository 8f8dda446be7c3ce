//! The values of all settings while flags, environment and config file are
//! merged, and where each value came from (for etcd's "was it set
//! explicitly" rules and for naming the source in error messages).

use std::time::Duration;

use super::flags::CommandLine;
use super::table::{Setting, SETTINGS};
use super::urls::EtcdUrl;
use super::value::{default_value, Value};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Default,
    Flag,
    /// The `ETCD_*` variable.
    Env(String),
    /// The config-file key path, e.g. `client-transport-security.cert-file`.
    File(String),
}

impl Origin {
    /// " (from ETCD_X)" style suffix naming a non-flag source.
    pub(crate) fn describe(&self) -> String {
        match self {
            Origin::Default | Origin::Flag => String::new(),
            Origin::Env(var) => format!(" (set by {var})"),
            Origin::File(key) => format!(" (set by config file key {key:?})"),
        }
    }
}

/// One value per table entry, in table order.
pub(crate) struct Settings {
    entries: Vec<(Value, Origin)>,
}

impl Settings {
    pub(crate) fn defaults() -> Self {
        Settings {
            entries: SETTINGS
                .iter()
                .map(|s| (default_value(s), Origin::Default))
                .collect(),
        }
    }

    pub(crate) fn from_command_line(command_line: &CommandLine) -> Self {
        let mut settings = Self::defaults();
        for (setting, value) in &command_line.values {
            settings.set(setting, value.clone(), Origin::Flag);
        }
        settings
    }

    pub(crate) fn set(&mut self, setting: &Setting, value: Value, origin: Origin) {
        self.entries[index(setting.name)] = (value, origin);
    }

    /// Replaces a value computed from others, keeping its origin.
    pub(crate) fn derive(&mut self, name: &str, value: Value) {
        self.entries[index(name)].0 = value;
    }

    pub(crate) fn value(&self, name: &str) -> &Value {
        &self.entries[index(name)].0
    }

    pub(crate) fn origin(&self, name: &str) -> &Origin {
        &self.entries[index(name)].1
    }

    /// Set by flag, environment or config file (etcd's `flags.IsSet`).
    pub(crate) fn is_explicit(&self, name: &str) -> bool {
        *self.origin(name) != Origin::Default
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static Setting, &Value, &Origin)> {
        SETTINGS
            .iter()
            .zip(&self.entries)
            .map(|(s, (v, o))| (s, v, o))
    }

    pub(crate) fn str(&self, name: &str) -> &str {
        match self.value(name) {
            Value::Str(s) => s,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(b) => *b,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn uint(&self, name: &str) -> u64 {
        match self.value(name) {
            Value::Uint(n) => *n,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn int(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Int(n) => *n,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn duration(&self, name: &str) -> Duration {
        match self.value(name) {
            Value::Duration(d) => *d,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn urls(&self, name: &str) -> &[EtcdUrl] {
        match self.value(name) {
            Value::Urls(urls) => urls,
            other => mismatch(name, other),
        }
    }

    pub(crate) fn list(&self, name: &str) -> &[String] {
        match self.value(name) {
            Value::List(items) => items,
            other => mismatch(name, other),
        }
    }
}

fn index(name: &str) -> usize {
    match SETTINGS.iter().position(|s| s.name == name) {
        Some(i) => i,
        None => panic!("config table has no setting named {name:?}"),
    }
}

/// The table fixes each setting's kind, so a mismatch is a bug in this module.
fn mismatch(name: &str, value: &Value) -> ! {
    panic!("setting {name:?} holds {value:?}, not the type its reader expects")
}
