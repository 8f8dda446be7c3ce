//! `ETCD_*` environment variables, with the rules of etcd's
//! `flags.SetFlagsFromEnv`: every flag `--some-flag` can come from
//! `ETCD_SOME_FLAG`; a variable for a flag also given on the command line is
//! fatal; unknown `ETCD_` variables only produce a warning.

use std::collections::HashSet;

use super::flags::CommandLine;
use super::settings::{Origin, Settings};
use super::table::SETTINGS;
use super::value::parse_flag_value;
use super::ConfigError;

/// Applies the environment to `settings` (command-line mode only).
pub(crate) fn apply(
    settings: &mut Settings,
    command_line: &CommandLine,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
    infos: &mut Vec<String>,
) -> Result<(), ConfigError> {
    // etcd refuses ETCD_VERSION so that an exported variable cannot turn
    // every start into `etcd --version`.
    let mut env: Vec<&(String, String)> = env.iter().collect();
    if let Some((_, value)) = env
        .iter()
        .find(|(key, value)| key == "ETCD_VERSION" && !value.is_empty())
    {
        warnings.push(format!(
            "cannot set special environment variable ETCD_VERSION={value}"
        ));
        env.retain(|(key, _)| key != "ETCD_VERSION");
    }
    let lookup = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());

    let set_on_command_line: HashSet<String> = command_line
        .values
        .iter()
        .map(|(setting, _)| setting.env_name())
        .collect();
    let mut used = HashSet::new();
    let mut last_error = None;
    // Go visits flags in name order and keeps the last error.
    let mut ordered: Vec<_> = SETTINGS.iter().collect();
    ordered.sort_by_key(|s| s.name);
    for setting in ordered {
        let key = setting.env_name();
        if set_on_command_line.contains(&key) {
            continue;
        }
        let Some(raw) = lookup(&key).filter(|v| !v.is_empty()) else {
            continue;
        };
        used.insert(key.clone());
        match parse_flag_value(setting, raw) {
            Ok(value) => {
                if setting.kind == super::table::Kind::Ignored {
                    warnings.push(format!(
                        "flag \"-{}\" is no longer supported - ignoring.",
                        setting.name
                    ));
                }
                settings.set(setting, value, Origin::Env(key.clone()));
                infos.push(format!(
                    "recognized and used environment variable {key}={raw}"
                ));
            }
            Err(e) => last_error = Some(format!("invalid value {raw:?} for {key}: {e}")),
        }
    }

    for (key, value) in &env {
        if used.contains(key.as_str()) {
            continue;
        }
        if set_on_command_line.contains(key.as_str()) {
            return Err(ConfigError::invalid(format!(
                "conflicting environment variable {key:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            )));
        }
        if key.starts_with("ETCD_") {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
        }
    }
    match last_error {
        Some(message) => Err(ConfigError::invalid(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flags::{self, FlagOutcome};
    use crate::config::value::Value;

    fn run(args: &[&str], env: &[(&str, &str)]) -> (Result<Settings, ConfigError>, Vec<String>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let Ok(FlagOutcome::Parsed(cl)) = flags::parse(&args) else {
            panic!("flags did not parse");
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut settings = Settings::from_command_line(&cl);
        let (mut warnings, mut infos) = (Vec::new(), Vec::new());
        let result = apply(&mut settings, &cl, &env, &mut warnings, &mut infos);
        (result.map(|()| settings), warnings)
    }

    #[test]
    fn variables_set_flags() {
        let (settings, _) = run(&[], &[("ETCD_NAME", "n1"), ("ETCD_SNAPSHOT_COUNT", "0x10")]);
        let settings = settings.unwrap();
        assert_eq!(settings.value("name"), &Value::Str("n1".into()));
        assert_eq!(settings.value("snapshot-count"), &Value::Uint(16));
        assert!(settings.is_explicit("name"));
    }

    #[test]
    fn empty_variables_are_not_used() {
        let (settings, warnings) = run(&[], &[("ETCD_NAME", "")]);
        assert_eq!(
            settings.unwrap().value("name"),
            &Value::Str("default".into())
        );
        assert_eq!(warnings, ["unrecognized environment variable ETCD_NAME="]);
    }

    #[test]
    fn flag_and_variable_together_is_fatal() {
        let (result, _) = run(&["--name", "a"], &[("ETCD_NAME", "b")]);
        assert_eq!(
            result.err().map(|e| e.message().to_string()),
            Some("conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)".to_string())
        );
    }

    #[test]
    fn unknown_variables_warn() {
        let (result, warnings) = run(&[], &[("ETCD_FOO", "bar"), ("PATH", "/bin")]);
        assert!(result.is_ok());
        assert_eq!(warnings, ["unrecognized environment variable ETCD_FOO=bar"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let (result, _) = run(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]);
        assert_eq!(
            result.err().map(|e| e.message().to_string()),
            Some("invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error (expected a non-negative integer number of milliseconds)".to_string())
        );
    }

    #[test]
    fn etcd_version_is_refused() {
        let (result, warnings) = run(&[], &[("ETCD_VERSION", "1")]);
        assert!(result.is_ok());
        assert_eq!(
            warnings,
            ["cannot set special environment variable ETCD_VERSION=1"]
        );
    }
}
