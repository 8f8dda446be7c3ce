//! The command line of etcd's `tools/benchmark`: global connection and
//! report flags, and the `put` and `range` subcommands. Flags follow Go's
//! conventions (`--flag=value` or `--flag value`, bools as `--flag` or
//! `--flag=false`, durations like `5m`).

use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};
use rsetcd::gofmt::parse_duration_saturating;

#[derive(Debug, Parser)]
#[command(
    name = "benchmark",
    about = "A low-level benchmark tool for etcd3",
    long_about = "benchmark is a low-level benchmark tool for etcd3.\n\
                  It uses gRPC client directly and does not depend on\n\
                  etcd client library."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// Total number of gRPC connections
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,

    /// Total number of gRPC clients
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,

    /// use full floating point precision
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub precise: bool,

    /// 'true' to sample requests for every second
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub sample: bool,

    /// connect only to the leader node
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub target_leader: bool,

    /// dial timeout for client connections
    #[arg(long, global = true, default_value = "0s", value_parser = parse_duration_saturating)]
    pub dial_timeout: Duration,

    /// also print one JSON line with requests_per_sec, latency percentiles
    /// (seconds) and errors, for scripts
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark put
    Put(PutArgs),
    /// Benchmark range
    Range(RangeArgs),
    /// Benchmark txn-put
    TxnPut(TxnPutArgs),
    /// Benchmark watch
    Watch(WatchArgs),
    /// Benchmark lease keepalive
    LeaseKeepalive(LeaseKeepaliveArgs),
}

#[derive(Debug, Args)]
pub struct LeaseKeepaliveArgs {
    /// Total number of lease keepalive requests
    #[arg(long, default_value_t = 10000)]
    pub total: usize,

    /// Leases to grant first and renew in turn, each client on one open
    /// stream (0: etcd's mode, one lease per client renewed with
    /// KeepAliveOnce); not in etcd's tool
    #[arg(long, default_value_t = 0)]
    pub leases: usize,

    /// TTL of the granted leases in seconds; not in etcd's tool (100 there)
    #[arg(long, default_value_t = 100)]
    pub ttl: i64,

    /// Report the CPU time this local server process spends per renewal
    /// (from /proc); not in etcd's tool
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    pub streams: usize,

    /// Total watchers per stream
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: usize,

    /// Total number of keys to be watched
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: usize,

    /// Number of keys to put per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub put_rate: u64,

    /// Number of put requests
    #[arg(long, default_value_t = 1000)]
    pub put_total: usize,

    /// Key size of watch request
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,

    /// Maximum possible keys
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub key_space_size: i64,

    /// Use sequential keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub sequential_keys: bool,
}

#[derive(Debug, Args)]
pub struct TxnPutArgs {
    /// Key size of txn put
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Value size of txn put
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,

    /// Number of puts per txn
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,

    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Total number of txn requests
    #[arg(long, default_value_t = 10000)]
    pub total: usize,

    /// Maximum possible keys
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub key_space_size: i64,

    /// Guard each txn with a compare on its first key that always holds
    /// (mod_revision > -1); not in etcd's tool
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub compare: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Key size of put request
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Value size of put request
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,

    /// Maximum puts per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Total number of put requests
    #[arg(long, default_value_t = 10000)]
    pub total: usize,

    /// Maximum possible keys
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub key_space_size: i64,

    /// Use sequential keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub sequential_keys: bool,

    /// Interval to compact database (do not duplicate this with etcd's
    /// 'auto-compaction-retention' flag) (e.g. --compact-interval=5m
    /// compacts every 5-minute)
    #[arg(long, default_value = "0s", value_parser = parse_duration_saturating)]
    pub compact_interval: Duration,

    /// Delta between current revision and compact revision (e.g. current
    /// revision 10000, compact at 9000)
    #[arg(long, default_value_t = 1000)]
    pub compact_index_delta: i64,
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// First key of the range
    pub key: String,

    /// End of the range (exclusive); a single key when omitted
    pub end_range: Option<String>,

    /// Maximum range requests per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Total number of range requests
    #[arg(long, default_value_t = 10000)]
    pub total: usize,

    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,

    /// Maximum number of results to return from range request (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub limit: i64,

    /// Only returns the count of keys
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub count_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("benchmark").chain(args.iter().copied()))
            .unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    #[test]
    fn defaults_match_etcd() {
        let cli = parse(&["put"]);
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!((cli.global.conns, cli.global.clients), (1, 1));
        assert!(!cli.global.precise && !cli.global.sample && !cli.global.json);
        let Command::Put(put) = cli.command else {
            panic!("expected put");
        };
        assert_eq!((put.total, put.key_size, put.val_size), (10000, 8, 8));
        assert_eq!((put.key_space_size, put.rate), (1, 0));
        assert!(!put.sequential_keys);
        assert_eq!(put.compact_interval, Duration::ZERO);
        assert_eq!(put.compact_index_delta, 1000);
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let cli = parse(&[
            "--endpoints=127.0.0.1:1,127.0.0.1:2",
            "--conns",
            "10",
            "put",
            "--clients=100",
            "--precise",
            "--sequential-keys",
            "--key-space-size",
            "100000",
            "--compact-interval=5m",
        ]);
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((cli.global.conns, cli.global.clients), (10, 100));
        assert!(cli.global.precise);
        let Command::Put(put) = cli.command else {
            panic!("expected put");
        };
        assert!(put.sequential_keys);
        assert_eq!(put.key_space_size, 100000);
        assert_eq!(put.compact_interval, Duration::from_secs(300));
    }

    #[test]
    fn go_style_bool_values_and_range_args() {
        let cli = parse(&[
            "--target-leader=true",
            "--json",
            "range",
            "foo",
            "fop",
            "--consistency=s",
            "--count-only=false",
            "--limit",
            "5",
        ]);
        assert!(cli.global.target_leader && cli.global.json);
        let Command::Range(range) = cli.command else {
            panic!("expected range");
        };
        assert_eq!(range.key, "foo");
        assert_eq!(range.end_range.as_deref(), Some("fop"));
        assert_eq!(range.consistency, "s");
        assert_eq!(range.limit, 5);
        assert!(!range.count_only);
        assert_eq!(range.total, 10000);
    }

    #[test]
    fn range_needs_a_key_and_bools_reject_garbage() {
        assert!(Cli::try_parse_from(["benchmark", "range"]).is_err());
        assert!(Cli::try_parse_from(["benchmark", "--precise=maybe", "put"]).is_err());
        assert!(Cli::try_parse_from(["benchmark", "put", "--total=-1"]).is_err());
    }
}
