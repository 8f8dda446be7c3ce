//! The command tree and how a command line is resolved against it, following
//! cobra as etcdctl configures it: global flags may appear anywhere, command
//! names may be abbreviated to a unique prefix, a group without a command
//! prints its help, and unknown commands get cobra's suggestions.

use rsetcd::gofmt;

use crate::flags::{help_flag, FlagKind, FlagSet, FlagSpec};

/// etcdctl's own version and the API version it speaks.
pub const VERSION: &str = rsetcd::ETCD_VERSION;
pub const API_VERSION: &str = "3.5";

/// Every command this etcdctl can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandId {
    Root,
    Alarm,
    AlarmDisarm,
    AlarmList,
    Auth,
    AuthDisable,
    AuthEnable,
    AuthStatus,
    Check,
    CheckDatascale,
    CheckPerf,
    Compaction,
    Completion,
    CompletionBash,
    CompletionFish,
    CompletionPowershell,
    CompletionZsh,
    Defrag,
    Del,
    Elect,
    Endpoint,
    EndpointHashKv,
    EndpointHealth,
    EndpointStatus,
    Get,
    Help,
    Lease,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseList,
    LeaseRevoke,
    LeaseTimeToLive,
    Lock,
    MakeMirror,
    Member,
    MemberAdd,
    MemberList,
    MemberPromote,
    MemberRemove,
    MemberUpdate,
    MoveLeader,
    Put,
    Role,
    RoleAdd,
    RoleDelete,
    RoleGet,
    RoleGrantPermission,
    RoleList,
    RoleRevokePermission,
    Snapshot,
    SnapshotRestore,
    SnapshotSave,
    SnapshotStatus,
    Txn,
    User,
    UserAdd,
    UserDelete,
    UserGet,
    UserGrantRole,
    UserList,
    UserPasswd,
    UserRevokeRole,
    Version,
    Watch,
}

/// One node of the command tree (a cobra.Command).
#[derive(Debug)]
pub struct CommandDef {
    pub id: CommandId,
    pub name: &'static str,
    /// cobra's `Use`: the name followed by the argument synopsis.
    pub usage: &'static str,
    pub short: &'static str,
    pub long: &'static str,
    pub flags: &'static [FlagSpec],
    /// Flags this command passes down to its subcommands.
    pub persistent: &'static [FlagSpec],
    pub runnable: bool,
    /// Subcommands, sorted by name as cobra lists them.
    pub children: &'static [CommandDef],
}

use FlagKind::{Bool, Duration as Dur, Int64, String as Str, StringSlice};

/// etcdctl's global flags (root persistent flags), as etcd 3.5 defines them.
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    FlagSpec::new("endpoints", StringSlice, "127.0.0.1:2379", "gRPC endpoints"),
    FlagSpec::new("debug", Bool, "false", "enable client-side debug logging"),
    FlagSpec::new(
        "write-out",
        Str,
        "simple",
        "set the output format (fields, json, protobuf, simple, table)",
    )
    .short('w'),
    FlagSpec::new("hex", Bool, "false", "print byte strings as hex encoded strings"),
    FlagSpec::new("dial-timeout", Dur, "2s", "dial timeout for client connections"),
    FlagSpec::new(
        "command-timeout",
        Dur,
        "5s",
        "timeout for short running command (excluding dial timeout)",
    ),
    FlagSpec::new("keepalive-time", Dur, "2s", "keepalive time for client connections"),
    FlagSpec::new(
        "keepalive-timeout",
        Dur,
        "6s",
        "keepalive timeout for client connections",
    ),
    FlagSpec::new(
        "insecure-transport",
        Bool,
        "true",
        "disable transport security for client connections",
    ),
    FlagSpec::new(
        "insecure-discovery",
        Bool,
        "true",
        "accept insecure SRV records describing cluster endpoints",
    ),
    FlagSpec::new(
        "insecure-skip-tls-verify",
        Bool,
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    FlagSpec::new("cert", Str, "", "identify secure client using this TLS certificate file"),
    FlagSpec::new("key", Str, "", "identify secure client using this TLS key file"),
    FlagSpec::new(
        "cacert",
        Str,
        "",
        "verify certificates of TLS-enabled secure servers using this CA bundle",
    ),
    FlagSpec::new(
        "user",
        Str,
        "",
        "username[:password] for authentication (prompt if password is not supplied)",
    ),
    FlagSpec::new(
        "password",
        Str,
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    FlagSpec::new(
        "discovery-srv",
        Str,
        "",
        "domain name to query for SRV records describing cluster endpoints",
    )
    .short('d'),
    FlagSpec::new(
        "discovery-srv-name",
        Str,
        "",
        "service name to query when using DNS discovery",
    ),
];

const PUT_LONG: &str = "
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
";

pub const PUT_FLAGS: &[FlagSpec] = &[
    help_flag("help for put"),
    FlagSpec::new(
        "lease",
        Str,
        "0",
        "lease ID (in hexadecimal) to attach to the key",
    ),
    FlagSpec::new(
        "prev-kv",
        Bool,
        "false",
        "return the previous key-value pair before modification",
    ),
    FlagSpec::new(
        "ignore-value",
        Bool,
        "false",
        "updates the key using its current value",
    ),
    FlagSpec::new(
        "ignore-lease",
        Bool,
        "false",
        "updates the key using its current lease",
    ),
];

pub const GET_FLAGS: &[FlagSpec] = &[
    help_flag("help for get"),
    FlagSpec::new(
        "consistency",
        Str,
        "l",
        "Linearizable(l) or Serializable(s)",
    ),
    FlagSpec::new(
        "order",
        Str,
        "",
        "Order of results; ASCEND or DESCEND (ASCEND by default)",
    ),
    FlagSpec::new(
        "sort-by",
        Str,
        "",
        "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
    ),
    FlagSpec::new("limit", Int64, "0", "Maximum number of results"),
    FlagSpec::new("prefix", Bool, "false", "Get keys with matching prefix"),
    FlagSpec::new(
        "from-key",
        Bool,
        "false",
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    FlagSpec::new("rev", Int64, "0", "Specify the kv revision"),
    FlagSpec::new("keys-only", Bool, "false", "Get only the keys"),
    FlagSpec::new("count-only", Bool, "false", "Get only the count"),
    FlagSpec::new(
        "print-value-only",
        Bool,
        "false",
        "Only write values when using the \"simple\" output format",
    ),
];

pub const DEL_FLAGS: &[FlagSpec] = &[
    help_flag("help for del"),
    FlagSpec::new("prefix", Bool, "false", "delete keys with matching prefix"),
    FlagSpec::new("prev-kv", Bool, "false", "return deleted key-value pairs"),
    FlagSpec::new(
        "from-key",
        Bool,
        "false",
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
];

const TXN_FLAGS: &[FlagSpec] = &[
    help_flag("help for txn"),
    FlagSpec::new(
        "interactive",
        Bool,
        "false",
        "Input transaction in interactive mode",
    )
    .short('i'),
];

const COMPACTION_FLAGS: &[FlagSpec] = &[
    help_flag("help for compaction"),
    FlagSpec::new(
        "physical",
        Bool,
        "false",
        "'true' to wait for compaction to physically remove all old revisions",
    ),
];

const WATCH_FLAGS: &[FlagSpec] = &[
    help_flag("help for watch"),
    FlagSpec::new("interactive", Bool, "false", "Interactive mode").short('i'),
    FlagSpec::new(
        "prefix",
        Bool,
        "false",
        "Watch on a prefix if prefix is set",
    ),
    FlagSpec::new("rev", Int64, "0", "Revision to start watching"),
    FlagSpec::new(
        "prev-kv",
        Bool,
        "false",
        "get the previous key-value pair before the event happens",
    ),
    FlagSpec::new(
        "progress-notify",
        Bool,
        "false",
        "get periodic watch progress notification from server",
    ),
];

/// The flags a `watch` line of `watch -i` may carry (cobra's flag set of
/// the watch command, before cobra adds `--help`).
pub const WATCH_LINE_FLAGS: &[FlagSpec] = WATCH_FLAGS.split_at(1).1;

const LOCK_FLAGS: &[FlagSpec] = &[
    help_flag("help for lock"),
    FlagSpec::new("ttl", Int64, "10", "timeout for session"),
];

const ELECT_FLAGS: &[FlagSpec] = &[
    help_flag("help for elect"),
    FlagSpec::new("listen", Bool, "false", "observation mode").short('l'),
];

const ENDPOINT_PERSISTENT: &[FlagSpec] = &[FlagSpec::new(
    "cluster",
    Bool,
    "false",
    "use all endpoints from the cluster member list",
)];

const fn leaf(
    id: CommandId,
    name: &'static str,
    usage: &'static str,
    short: &'static str,
    flags: &'static [FlagSpec],
) -> CommandDef {
    CommandDef {
        id,
        name,
        usage,
        short,
        long: "",
        flags,
        persistent: &[],
        runnable: true,
        children: &[],
    }
}

const ENDPOINT_CHILDREN: &[CommandDef] = &[
    CommandDef {
        persistent: &[FlagSpec::new(
            "rev",
            Int64,
            "0",
            "maximum revision to hash (default: all revisions)",
        )],
        ..leaf(
            CommandId::EndpointHashKv,
            "hashkv",
            "hashkv",
            "Prints the KV history hash for each endpoint in --endpoints",
            &[help_flag("help for hashkv")],
        )
    },
    leaf(
        CommandId::EndpointHealth,
        "health",
        "health",
        "Checks the healthiness of endpoints specified in `--endpoints` flag",
        &[help_flag("help for health")],
    ),
    CommandDef {
        long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
",
        ..leaf(
            CommandId::EndpointStatus,
            "status",
            "status",
            "Prints out the status of endpoints specified in `--endpoints` flag",
            &[help_flag("help for status")],
        )
    },
];

const LEASE_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::LeaseGrant,
        "grant",
        "grant <ttl>",
        "Creates leases",
        &[help_flag("help for grant")],
    ),
    leaf(
        CommandId::LeaseKeepAlive,
        "keep-alive",
        "keep-alive [options] <leaseID>",
        "Keeps leases alive (renew)",
        &[
            help_flag("help for keep-alive"),
            FlagSpec::new(
                "once",
                Bool,
                "false",
                "Resets the keep-alive time to its original value and exits immediately",
            ),
        ],
    ),
    leaf(
        CommandId::LeaseList,
        "list",
        "list",
        "List all active leases",
        &[help_flag("help for list")],
    ),
    leaf(
        CommandId::LeaseRevoke,
        "revoke",
        "revoke <leaseID>",
        "Revokes leases",
        &[help_flag("help for revoke")],
    ),
    leaf(
        CommandId::LeaseTimeToLive,
        "timetolive",
        "timetolive <leaseID> [options]",
        "Get lease information",
        &[
            help_flag("help for timetolive"),
            FlagSpec::new("keys", Bool, "false", "Get keys attached to this lease"),
        ],
    ),
];

const MEMBER_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::MemberAdd,
        "add",
        "add <memberName> [options]",
        "Adds a member into the cluster",
        &[
            help_flag("help for add"),
            FlagSpec::new(
                "learner",
                Bool,
                "false",
                "indicates if the new member is raft learner",
            ),
            FlagSpec::new(
                "peer-urls",
                Str,
                "",
                "comma separated peer URLs for the new member.",
            ),
        ],
    ),
    CommandDef {
        long: "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
",
        ..leaf(
            CommandId::MemberList,
            "list",
            "list",
            "Lists all members in the cluster",
            &[help_flag("help for list")],
        )
    },
    CommandDef {
        long: "Promotes a non-voting learner member to a voting one in the cluster.
",
        ..leaf(
            CommandId::MemberPromote,
            "promote",
            "promote <memberID>",
            "Promotes a non-voting member in the cluster",
            &[help_flag("help for promote")],
        )
    },
    leaf(
        CommandId::MemberRemove,
        "remove",
        "remove <memberID>",
        "Removes a member from the cluster",
        &[help_flag("help for remove")],
    ),
    leaf(
        CommandId::MemberUpdate,
        "update",
        "update <memberID> [options]",
        "Updates a member in the cluster",
        &[
            help_flag("help for update"),
            FlagSpec::new(
                "peer-urls",
                Str,
                "",
                "comma separated peer URLs for the updated member.",
            ),
        ],
    ),
];

const ALARM_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::AlarmDisarm,
        "disarm",
        "disarm",
        "Disarms all alarms",
        &[help_flag("help for disarm")],
    ),
    leaf(
        CommandId::AlarmList,
        "list",
        "list",
        "Lists all alarms",
        &[help_flag("help for list")],
    ),
];

const CHECK_CHILDREN: &[CommandDef] = &[
    CommandDef {
        long: "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
        ..leaf(
            CommandId::CheckDatascale,
            "datascale",
            "datascale [options]",
            "Check the memory usage of holding data for different workloads on a given server endpoint.",
            &[
                help_flag("help for datascale"),
                FlagSpec::new(
                    "load",
                    Str,
                    "s",
                    "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
                ),
                FlagSpec::new(
                    "prefix",
                    Str,
                    "/etcdctl-check-datascale/",
                    "The prefix for writing the datascale check's keys.",
                ),
                FlagSpec::new(
                    "auto-compact",
                    Bool,
                    "false",
                    "Compact storage with last revision after test is finished.",
                ),
                FlagSpec::new(
                    "auto-defrag",
                    Bool,
                    "false",
                    "Defragment storage after test is finished.",
                ),
            ],
        )
    },
    leaf(
        CommandId::CheckPerf,
        "perf",
        "perf [options]",
        "Check the performance of the etcd cluster",
        &[
            help_flag("help for perf"),
            FlagSpec::new(
                "load",
                Str,
                "s",
                "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
            ),
            FlagSpec::new(
                "prefix",
                Str,
                "/etcdctl-check-perf/",
                "The prefix for writing the performance check's keys.",
            ),
            FlagSpec::new(
                "auto-compact",
                Bool,
                "false",
                "Compact storage with last revision after test is finished.",
            ),
            FlagSpec::new(
                "auto-defrag",
                Bool,
                "false",
                "Defragment storage after test is finished.",
            ),
        ],
    ),
];

const DEFRAG_FLAGS: &[FlagSpec] = &[
    help_flag("help for defrag"),
    FlagSpec::new(
        "data-dir",
        Str,
        "",
        "Optional. If present, defragments a data directory not in use by etcd.",
    ),
];

const MAKE_MIRROR_FLAGS: &[FlagSpec] = &[
    help_flag("help for make-mirror"),
    FlagSpec::new("prefix", Str, "", "Key-value prefix to mirror"),
    FlagSpec::new(
        "dest-prefix",
        Str,
        "",
        "destination prefix to mirror a prefix to a different prefix in the destination cluster",
    ),
    FlagSpec::new(
        "no-dest-prefix",
        Bool,
        "false",
        "mirror key-values to the root of the destination cluster",
    ),
    FlagSpec::new(
        "dest-cert",
        Str,
        "",
        "Identify secure client using this TLS certificate file for the destination cluster",
    ),
    FlagSpec::new(
        "dest-key",
        Str,
        "",
        "Identify secure client using this TLS key file",
    ),
    FlagSpec::new(
        "dest-cacert",
        Str,
        "",
        "Verify certificates of TLS enabled secure servers using this CA bundle",
    ),
    FlagSpec::new(
        "dest-insecure-transport",
        Bool,
        "true",
        "Disable transport security for client connections",
    ),
    FlagSpec::new(
        "dest-user",
        Str,
        "",
        "Destination username[:password] for authentication (prompt if password is not supplied)",
    ),
    FlagSpec::new(
        "dest-password",
        Str,
        "",
        "Destination password for authentication (if this option is used, --user option shouldn't include password)",
    ),
];

const AUTH_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::AuthDisable,
        "disable",
        "disable",
        "Disables authentication",
        &[help_flag("help for disable")],
    ),
    leaf(
        CommandId::AuthEnable,
        "enable",
        "enable",
        "Enables authentication",
        &[help_flag("help for enable")],
    ),
    leaf(
        CommandId::AuthStatus,
        "status",
        "status",
        "Returns authentication status",
        &[help_flag("help for status")],
    ),
];

const USER_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::UserAdd,
        "add",
        "add <user name or user:password> [options]",
        "Adds a new user",
        &[
            help_flag("help for add"),
            FlagSpec::new(
                "interactive",
                Bool,
                "true",
                "Read password from stdin instead of interactive terminal",
            ),
            FlagSpec::new(
                "new-user-password",
                Str,
                "",
                "Supply password from the command line flag",
            ),
            FlagSpec::new(
                "no-password",
                Bool,
                "false",
                "Create a user without password (CN based auth only)",
            ),
        ],
    ),
    leaf(
        CommandId::UserDelete,
        "delete",
        "delete <user name>",
        "Deletes a user",
        &[help_flag("help for delete")],
    ),
    leaf(
        CommandId::UserGet,
        "get",
        "get <user name> [options]",
        "Gets detailed information of a user",
        &[
            help_flag("help for get"),
            FlagSpec::new(
                "detail",
                Bool,
                "false",
                "Show permissions of roles granted to the user",
            ),
        ],
    ),
    leaf(
        CommandId::UserGrantRole,
        "grant-role",
        "grant-role <user name> <role name>",
        "Grants a role to a user",
        &[help_flag("help for grant-role")],
    ),
    leaf(
        CommandId::UserList,
        "list",
        "list",
        "Lists all users",
        &[help_flag("help for list")],
    ),
    leaf(
        CommandId::UserPasswd,
        "passwd",
        "passwd <user name> [options]",
        "Changes password of user",
        &[
            help_flag("help for passwd"),
            FlagSpec::new(
                "interactive",
                Bool,
                "true",
                "If true, read password from stdin instead of interactive terminal",
            ),
        ],
    ),
    leaf(
        CommandId::UserRevokeRole,
        "revoke-role",
        "revoke-role <user name> <role name>",
        "Revokes a role from a user",
        &[help_flag("help for revoke-role")],
    ),
];

const ROLE_CHILDREN: &[CommandDef] = &[
    leaf(
        CommandId::RoleAdd,
        "add",
        "add <role name>",
        "Adds a new role",
        &[help_flag("help for add")],
    ),
    leaf(
        CommandId::RoleDelete,
        "delete",
        "delete <role name>",
        "Deletes a role",
        &[help_flag("help for delete")],
    ),
    leaf(
        CommandId::RoleGet,
        "get",
        "get <role name>",
        "Gets detailed information of a role",
        &[help_flag("help for get")],
    ),
    leaf(
        CommandId::RoleGrantPermission,
        "grant-permission",
        "grant-permission [options] <role name> <permission type> <key> [endkey]",
        "Grants a key to a role",
        &[
            help_flag("help for grant-permission"),
            FlagSpec::new("prefix", Bool, "false", "grant a prefix permission"),
            FlagSpec::new(
                "from-key",
                Bool,
                "false",
                "grant a permission of keys that are greater than or equal to the given key using byte compare",
            ),
        ],
    ),
    leaf(
        CommandId::RoleList,
        "list",
        "list",
        "Lists all roles",
        &[help_flag("help for list")],
    ),
    leaf(
        CommandId::RoleRevokePermission,
        "revoke-permission",
        "revoke-permission <role name> <key> [endkey]",
        "Revokes a key from a role",
        &[
            help_flag("help for revoke-permission"),
            FlagSpec::new("prefix", Bool, "false", "revoke a prefix permission"),
            FlagSpec::new(
                "from-key",
                Bool,
                "false",
                "revoke a permission of keys that are greater than or equal to the given key using byte compare",
            ),
        ],
    ),
];

const SNAPSHOT_CHILDREN: &[CommandDef] = &[
    CommandDef {
        long: "Moved to `etcdctl snapshot restore ...`\n",
        ..leaf(
            CommandId::SnapshotRestore,
            "restore",
            "restore <filename> [options]",
            "Restores an etcd member snapshot to an etcd directory",
            &[
                help_flag("help for restore"),
                FlagSpec::new("data-dir", Str, "", "Path to the data directory"),
                FlagSpec::new(
                    "wal-dir",
                    Str,
                    "",
                    "Path to the WAL directory (use --data-dir if none given)",
                ),
                FlagSpec::new(
                    "initial-cluster",
                    Str,
                    "default=http://localhost:2380",
                    "Initial cluster configuration for restore bootstrap",
                ),
                FlagSpec::new(
                    "initial-cluster-token",
                    Str,
                    "etcd-cluster",
                    "Initial cluster token for the etcd cluster during restore bootstrap",
                ),
                FlagSpec::new(
                    "initial-advertise-peer-urls",
                    Str,
                    "http://localhost:2380",
                    "List of this member's peer URLs to advertise to the rest of the cluster",
                ),
                FlagSpec::new("name", Str, "default", "Human-readable name for this member"),
                FlagSpec::new(
                    "skip-hash-check",
                    Bool,
                    "false",
                    "Ignore snapshot integrity hash value (required if copied from data directory)",
                ),
            ],
        )
    },
    leaf(
        CommandId::SnapshotSave,
        "save",
        "save <filename>",
        "Stores an etcd node backend snapshot to a given file",
        &[help_flag("help for save")],
    ),
    CommandDef {
        long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.

Moved to 'etcdctl snapshot status ...'
",
        ..leaf(
            CommandId::SnapshotStatus,
            "status",
            "status <filename>",
            "[deprecated] Gets backend snapshot status of a given file",
            &[help_flag("help for status")],
        )
    },
];

/// A command that only groups subcommands (not runnable).
const fn group(
    id: CommandId,
    name: &'static str,
    usage: &'static str,
    short: &'static str,
    flags: &'static [FlagSpec],
    children: &'static [CommandDef],
) -> CommandDef {
    CommandDef {
        runnable: false,
        children,
        ..leaf(id, name, usage, short, flags)
    }
}

/// `etcdctl completion <shell>` (etcd 3.4's etcdctl as Debian builds it
/// has this command, from cobra; etcd 3.5's has not).
const COMPLETION_CHILDREN: &[CommandDef] = &[
    CommandDef {
        long: "Generate the autocompletion script for the bash shell.

To load completions in your current shell session:

\tsource <(etcdctl completion bash)

To load completions for every new session, execute once:

\tetcdctl completion bash > /etc/bash_completion.d/etcdctl

You will need to start a new shell for this setup to take effect.
",
        ..leaf(
            CommandId::CompletionBash,
            "bash",
            "bash",
            "Generate the autocompletion script for bash",
            &[help_flag("help for bash")],
        )
    },
    CommandDef {
        long: "Generate the autocompletion script for the fish shell.

To load completions in your current shell session:

\tetcdctl completion fish | source

To load completions for every new session, execute once:

\tetcdctl completion fish > ~/.config/fish/completions/etcdctl.fish

You will need to start a new shell for this setup to take effect.
",
        ..leaf(
            CommandId::CompletionFish,
            "fish",
            "fish",
            "Generate the autocompletion script for fish",
            &[help_flag("help for fish")],
        )
    },
    CommandDef {
        long: "Generate the autocompletion script for powershell.

To load completions in your current shell session:

\tetcdctl completion powershell | Out-String | Invoke-Expression

To load completions for every new session, add the output of the above command
to your powershell profile.
",
        ..leaf(
            CommandId::CompletionPowershell,
            "powershell",
            "powershell",
            "Generate the autocompletion script for powershell",
            &[help_flag("help for powershell")],
        )
    },
    CommandDef {
        long: "Generate the autocompletion script for the zsh shell.

If shell completion is not already enabled in your environment you will need
to enable it.  You can execute the following once:

\techo \"autoload -U compinit; compinit\" >> ~/.zshrc

To load completions for every new session, execute once:

\tetcdctl completion zsh > \"${fpath[1]}/_etcdctl\"

You will need to start a new shell for this setup to take effect.
",
        ..leaf(
            CommandId::CompletionZsh,
            "zsh",
            "zsh",
            "Generate the autocompletion script for zsh",
            &[help_flag("help for zsh")],
        )
    },
];

const ROOT_CHILDREN: &[CommandDef] = &[
    group(
        CommandId::Alarm,
        "alarm",
        "alarm <subcommand>",
        "Alarm related commands",
        &[help_flag("help for alarm")],
        ALARM_CHILDREN,
    ),
    group(
        CommandId::Auth,
        "auth",
        "auth <enable or disable>",
        "Enable or disable authentication",
        &[help_flag("help for auth")],
        AUTH_CHILDREN,
    ),
    group(
        CommandId::Check,
        "check",
        "check <subcommand>",
        "commands for checking properties of the etcd cluster",
        &[help_flag("help for check")],
        CHECK_CHILDREN,
    ),
    leaf(
        CommandId::Compaction,
        "compaction",
        "compaction [options] <revision>",
        "Compacts the event history in etcd",
        COMPACTION_FLAGS,
    ),
    CommandDef {
        long: "Generate the autocompletion script for etcdctl for the specified shell.
See each sub-command's help for details on how to use the generated script.
",
        ..group(
            CommandId::Completion,
            "completion",
            "completion",
            "Generate the autocompletion script for the specified shell",
            &[help_flag("help for completion")],
            COMPLETION_CHILDREN,
        )
    },
    CommandDef {
        persistent: ENDPOINT_PERSISTENT,
        ..leaf(
            CommandId::Defrag,
            "defrag",
            "defrag",
            "Defragments the storage of the etcd members with given endpoints",
            DEFRAG_FLAGS,
        )
    },
    leaf(
        CommandId::Del,
        "del",
        "del [options] <key> [range_end]",
        "Removes the specified key or range of keys [key, range_end)",
        DEL_FLAGS,
    ),
    leaf(
        CommandId::Elect,
        "elect",
        "elect <election-name> [proposal]",
        "Observes and participates in leader election",
        ELECT_FLAGS,
    ),
    CommandDef {
        id: CommandId::Endpoint,
        name: "endpoint",
        usage: "endpoint <subcommand>",
        short: "Endpoint related commands",
        long: "",
        flags: &[help_flag("help for endpoint")],
        persistent: ENDPOINT_PERSISTENT,
        runnable: false,
        children: ENDPOINT_CHILDREN,
    },
    leaf(
        CommandId::Get,
        "get",
        "get [options] <key> [range_end]",
        "Gets the key or a range of keys",
        GET_FLAGS,
    ),
    CommandDef {
        long: "Help provides help for any command in the application.
Simply type etcdctl help [path to command] for full details.",
        ..leaf(
            CommandId::Help,
            "help",
            "help [command]",
            "Help about any command",
            &[help_flag("help for help")],
        )
    },
    CommandDef {
        id: CommandId::Lease,
        name: "lease",
        usage: "lease <subcommand>",
        short: "Lease related commands",
        long: "",
        flags: &[help_flag("help for lease")],
        persistent: &[],
        runnable: false,
        children: LEASE_CHILDREN,
    },
    leaf(
        CommandId::Lock,
        "lock",
        "lock <lockname> [exec-command arg1 arg2 ...]",
        "Acquires a named lock",
        LOCK_FLAGS,
    ),
    leaf(
        CommandId::MakeMirror,
        "make-mirror",
        "make-mirror [options] <destination>",
        "Makes a mirror at the destination etcd cluster",
        MAKE_MIRROR_FLAGS,
    ),
    CommandDef {
        id: CommandId::Member,
        name: "member",
        usage: "member <subcommand>",
        short: "Membership related commands",
        long: "",
        flags: &[help_flag("help for member")],
        persistent: &[],
        runnable: false,
        children: MEMBER_CHILDREN,
    },
    leaf(
        CommandId::MoveLeader,
        "move-leader",
        "move-leader <transferee-member-id>",
        "Transfers leadership to another etcd cluster member.",
        &[help_flag("help for move-leader")],
    ),
    CommandDef {
        long: PUT_LONG,
        ..leaf(
            CommandId::Put,
            "put",
            "put [options] <key> <value> (<value> can also be given from stdin)",
            "Puts the given key into the store",
            PUT_FLAGS,
        )
    },
    group(
        CommandId::Role,
        "role",
        "role <subcommand>",
        "Role related commands",
        &[help_flag("help for role")],
        ROLE_CHILDREN,
    ),
    group(
        CommandId::Snapshot,
        "snapshot",
        "snapshot <subcommand>",
        "Manages etcd node snapshots",
        &[help_flag("help for snapshot")],
        SNAPSHOT_CHILDREN,
    ),
    leaf(
        CommandId::Txn,
        "txn",
        "txn [options]",
        "Txn processes all the requests in one transaction",
        TXN_FLAGS,
    ),
    group(
        CommandId::User,
        "user",
        "user <subcommand>",
        "User related commands",
        &[help_flag("help for user")],
        USER_CHILDREN,
    ),
    leaf(
        CommandId::Version,
        "version",
        "version",
        "Prints the version of etcdctl",
        &[help_flag("help for version")],
    ),
    leaf(
        CommandId::Watch,
        "watch",
        "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        "Watches events stream on keys or prefixes",
        WATCH_FLAGS,
    ),
];

/// The root of the tree: `etcdctl`.
pub static ROOT: CommandDef = CommandDef {
    id: CommandId::Root,
    name: "etcdctl",
    usage: "etcdctl",
    short: "A simple command line client for etcd3.",
    long: "",
    flags: &[help_flag("help for etcdctl")],
    persistent: GLOBAL_FLAGS,
    runnable: false,
    children: ROOT_CHILDREN,
};

/// A resolved command: the path from the root and its flags.
pub struct Resolved {
    pub path: Vec<&'static CommandDef>,
    pub args: Vec<String>,
}

impl Resolved {
    pub fn command(&self) -> &'static CommandDef {
        self.path[self.path.len() - 1]
    }

    /// The command's own flags (its flags and persistent flags).
    pub fn local_flags(&self) -> Vec<FlagSpec> {
        let cmd = self.command();
        let mut flags: Vec<FlagSpec> = cmd.flags.iter().chain(cmd.persistent).copied().collect();
        flags.sort_by_key(|f| f.name);
        flags
    }

    /// Flags inherited from ancestors' persistent flags.
    pub fn inherited_flags(&self) -> Vec<FlagSpec> {
        let mut flags: Vec<FlagSpec> = self.path[..self.path.len() - 1]
            .iter()
            .flat_map(|c| c.persistent.iter().copied())
            .collect();
        flags.sort_by_key(|f| f.name);
        flags
    }

    /// All flags the command accepts.
    pub fn flag_set(&self) -> FlagSet {
        FlagSet::new(self.local_flags().into_iter().chain(self.inherited_flags()))
    }

    /// cobra's `CommandPath`, e.g. `etcdctl endpoint status`.
    pub fn command_path(&self) -> String {
        self.path
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Resolves `args` to a command as cobra's `Find` does; the error is
/// cobra's "unknown command" message.
pub fn find(args: &[String]) -> Result<Resolved, String> {
    let mut path: Vec<&'static CommandDef> = vec![&ROOT];
    let mut rest: Vec<String> = args.to_vec();
    loop {
        let current = Resolved {
            path: path.clone(),
            args: Vec::new(),
        };
        let words = strip_flags(&rest, &current.flag_set());
        let Some(next) = words.first() else { break };
        let Some(child) = find_next(path[path.len() - 1], next) else {
            break;
        };
        if let Some(pos) = rest.iter().position(|a| a == next) {
            rest.remove(pos);
        }
        path.push(child);
    }
    let resolved = Resolved { path, args: rest };
    let cmd = resolved.command();
    if cmd.id == CommandId::Root {
        let words = strip_flags(&resolved.args, &resolved.flag_set());
        if let Some(first) = words.first() {
            return Err(format!(
                "unknown command {} for {}{}",
                gofmt::quote(first.as_bytes()),
                gofmt::quote(resolved.command_path().as_bytes()),
                suggestions(cmd, first)
            ));
        }
    }
    Ok(resolved)
}

/// The non-flag words of `args`, skipping the values of flags that take one.
fn strip_flags(args: &[String], flags: &FlagSet) -> Vec<String> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s == "--" {
            break;
        }
        let takes_value = if let Some(long) = s.strip_prefix("--") {
            !s.contains('=') && !flags.is_bool(long)
        } else if s.starts_with('-') && s.len() == 2 {
            let c = s[1..].chars().next().unwrap_or('-');
            !flags.is_bool_short(c)
        } else {
            false
        };
        if takes_value {
            // cobra stops when at most the value itself is left.
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
            continue;
        }
        if !s.is_empty() && !s.starts_with('-') {
            words.push(s.clone());
        }
    }
    words
}

/// A child by exact name, or by a prefix that matches exactly one child.
fn find_next(cmd: &'static CommandDef, word: &str) -> Option<&'static CommandDef> {
    if let Some(exact) = cmd.children.iter().find(|c| c.name == word) {
        return Some(exact);
    }
    let mut matches = cmd.children.iter().filter(|c| c.name.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// cobra's "Did you mean this?" block for an unknown command.
fn suggestions(cmd: &CommandDef, typed: &str) -> String {
    let typed_lower = typed.to_lowercase();
    let found: Vec<&str> = cmd
        .children
        .iter()
        .filter(|c| {
            levenshtein(&typed_lower, &c.name.to_lowercase()) <= 2
                || c.name.to_lowercase().starts_with(&typed_lower)
        })
        .map(|c| c.name)
        .collect();
    if found.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\nDid you mean this?\n");
    for name in found {
        out.push('\t');
        out.push_str(name);
        out.push('\n');
    }
    out
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_commands_after_global_flags() {
        let r = find(&args(&["--endpoints", "x:1", "get", "foo"])).unwrap();
        assert_eq!(r.command().id, CommandId::Get);
        assert_eq!(r.args, args(&["--endpoints", "x:1", "foo"]));
        let r = find(&args(&["endpoint", "status", "-w", "json"])).unwrap();
        assert_eq!(r.command().id, CommandId::EndpointStatus);
        let r = find(&args(&["g", "foo"])).unwrap();
        assert_eq!(r.command().id, CommandId::Get);
    }

    #[test]
    fn unknown_commands_suggest() {
        assert_eq!(
            find(&args(&["gett"])).err().unwrap(),
            "unknown command \"gett\" for \"etcdctl\"\n\nDid you mean this?\n\tget\n"
        );
        assert_eq!(
            find(&args(&["bogus"])).err().unwrap(),
            "unknown command \"bogus\" for \"etcdctl\""
        );
    }
}
