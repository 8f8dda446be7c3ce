//! The commands etcdctl runs, one module per command (etcd's
//! `etcdctl/ctlv3/command/<noun>_command.go`), and the dispatch to them.

pub mod alarm;
pub mod auth;
pub mod check;
pub mod compaction;
pub mod completion;
pub mod defrag;
pub mod del;
pub mod elect;
pub mod endpoint;
pub mod get;
pub mod lease;
pub mod lock;
pub mod make_mirror;
pub mod member;
pub mod move_leader;
pub mod put;
pub mod role;
pub mod snapshot;
pub mod txn;
pub mod user;
pub mod version;
pub mod watch;

// Commands use it as `command::prefix_end`; clientv3's rule is shared.
pub use rsetcd::client::prefix_end;

use crate::cli::{self, CommandId, Resolved};
use crate::exit::{CtlResult, ExitError};
use crate::flags::{FlagSet, FlagSpec};
use crate::help;

/// A parsed command line, handed to the command that runs it.
pub struct Invocation {
    /// The command's flags, local and inherited.
    pub flags: FlagSet,
    /// The inherited (global) flags, which `ETCDCTL_*` variables may set.
    pub inherited: Vec<FlagSpec>,
    /// Positional arguments.
    pub args: Vec<String>,
}

impl Invocation {
    /// Positional arguments as the bytes sent to etcd.
    pub fn byte_args(&self) -> Vec<Vec<u8>> {
        self.args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }
}

/// Runs the resolved command.
pub async fn run(resolved: &Resolved, invocation: Invocation) -> CtlResult {
    match resolved.command().id {
        CommandId::Put => put::run(invocation).await,
        CommandId::Get => get::run(invocation).await,
        CommandId::Del => del::run(invocation).await,
        CommandId::Txn => txn::run(invocation).await,
        CommandId::Compaction => compaction::run(invocation).await,
        CommandId::Version => version::run(),
        CommandId::CompletionBash => completion::run(completion::Shell::Bash),
        CommandId::CompletionFish => completion::run(completion::Shell::Fish),
        CommandId::CompletionPowershell => completion::run(completion::Shell::PowerShell),
        CommandId::CompletionZsh => completion::run(completion::Shell::Zsh),
        CommandId::EndpointHealth => endpoint::health(invocation).await,
        CommandId::EndpointStatus => endpoint::status(invocation).await,
        CommandId::EndpointHashKv => endpoint::hash_kv(invocation).await,
        CommandId::MemberAdd => member::add(invocation).await,
        CommandId::MemberList => member::list(invocation).await,
        CommandId::MemberPromote => member::promote(invocation).await,
        CommandId::MemberRemove => member::remove(invocation).await,
        CommandId::MemberUpdate => member::update(invocation).await,
        CommandId::MoveLeader => move_leader::run(invocation).await,
        CommandId::Watch => watch::run(invocation).await,
        CommandId::LeaseGrant => lease::grant(invocation).await,
        CommandId::LeaseRevoke => lease::revoke(invocation).await,
        CommandId::LeaseTimeToLive => lease::time_to_live(invocation).await,
        CommandId::LeaseList => lease::list(invocation).await,
        CommandId::LeaseKeepAlive => lease::keep_alive(invocation).await,
        CommandId::Lock => lock::run(invocation).await,
        CommandId::Elect => elect::run(invocation).await,
        CommandId::AlarmDisarm => alarm::disarm(invocation).await,
        CommandId::AlarmList => alarm::list(invocation).await,
        CommandId::CheckPerf => check::perf(invocation).await,
        CommandId::CheckDatascale => check::datascale(invocation).await,
        CommandId::Defrag => defrag::run(invocation).await,
        CommandId::MakeMirror => make_mirror::run(invocation).await,
        CommandId::SnapshotSave => snapshot::save(invocation).await,
        CommandId::SnapshotStatus => snapshot::status(invocation),
        CommandId::SnapshotRestore => snapshot::restore(invocation),
        CommandId::AuthEnable => auth::enable(invocation).await,
        CommandId::AuthDisable => auth::disable(invocation).await,
        CommandId::AuthStatus => auth::status(invocation).await,
        CommandId::UserAdd => user::add(invocation).await,
        CommandId::UserDelete => user::delete(invocation).await,
        CommandId::UserGet => user::get(invocation).await,
        CommandId::UserList => user::list(invocation).await,
        CommandId::UserPasswd => user::passwd(invocation).await,
        CommandId::UserGrantRole => user::grant_role(invocation).await,
        CommandId::UserRevokeRole => user::revoke_role(invocation).await,
        CommandId::RoleAdd => role::add(invocation).await,
        CommandId::RoleDelete => role::delete(invocation).await,
        CommandId::RoleGet => role::get(invocation).await,
        CommandId::RoleList => role::list(invocation).await,
        CommandId::RoleGrantPermission => role::grant_permission(invocation).await,
        CommandId::RoleRevokePermission => role::revoke_permission(invocation).await,
        CommandId::Help => help_command(&invocation.args),
        // Groups are not runnable: main prints their help instead.
        CommandId::Root
        | CommandId::Alarm
        | CommandId::Auth
        | CommandId::Check
        | CommandId::Completion
        | CommandId::Endpoint
        | CommandId::Lease
        | CommandId::Member
        | CommandId::Role
        | CommandId::Snapshot
        | CommandId::User => {
            print!("{}", help::usage(resolved));
            Ok(())
        }
    }
}

/// cobra's `help [command]`.
fn help_command(args: &[String]) -> CtlResult {
    match cli::find(args) {
        Ok(target) => print!("{}", help::usage(&target)),
        Err(_) => {
            let topics: Vec<String> = args.iter().map(|a| format!("`{a}`")).collect();
            eprintln!("Unknown help topic [{}]", topics.join(" "));
            let root = Resolved {
                path: vec![&cli::ROOT],
                args: Vec::new(),
            };
            print!("{}", help::usage(&root));
        }
    }
    Ok(())
}

/// `--prefix` and `--from-key`, which widen `<key>` into a range (`get`
/// and `del`).
pub struct KeyRangeFlags {
    prefix: bool,
    from_key: bool,
}

impl KeyRangeFlags {
    /// Reads the two flags, which etcdctl refuses together.
    pub fn from_flags(flags: &FlagSet) -> CtlResult<Self> {
        let prefix = flags.bool("prefix");
        let from_key = flags.bool("from-key");
        if prefix && from_key {
            return Err(ExitError::bad_args(
                "`--prefix` and `--from-key` cannot be set at the same time, choose one",
            ));
        }
        Ok(KeyRangeFlags { prefix, from_key })
    }

    /// The request's key and range end from `<key> [range_end]`, as
    /// clientv3's `WithRange`, `WithPrefix` and `WithFromKey` set them (an
    /// empty key with either flag means every key).
    pub fn key_range(
        &self,
        key: &[u8],
        range_end: Option<&Vec<u8>>,
    ) -> CtlResult<(Vec<u8>, Vec<u8>)> {
        let mut key = key.to_vec();
        let mut end = Vec::new();
        if let Some(range_end) = range_end {
            if self.prefix || self.from_key {
                return Err(ExitError::bad_args(
                    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
                ));
            }
            end = range_end.clone();
        }
        if self.prefix {
            if key.is_empty() {
                key = vec![0];
                end = vec![0];
            } else {
                end = prefix_end(&key);
            }
        }
        if self.from_key {
            if key.is_empty() {
                key = vec![0];
            }
            end = vec![0];
        }
        Ok((key, end))
    }
}
