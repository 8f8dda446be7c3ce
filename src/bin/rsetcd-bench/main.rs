//! rsetcd-bench: a gRPC load generator for etcd's v3 KV API with the
//! command line and report format of etcd's `tools/benchmark` (`put`,
//! `range`, `txn-put`), plus `--json` for scripts.

mod cli;
mod conn;
mod lease;
mod put;
mod range;
mod rate_limit;
mod report;
mod runner;
mod timeseries;
mod txn_put;
mod watch;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Parser;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::conn::ConnectOptions;
use crate::put::PutWorkload;
use crate::range::RangeWorkload;
use crate::rate_limit::RateLimiter;
use crate::report::{Precision, Stats};
use crate::runner::{Outcome, Workload};
use crate::timeseries::TimeSeries;
use crate::txn_put::TxnPutWorkload;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    if global.clients == 0 {
        bail!("--clients must be at least 1");
    }
    match cli.command {
        Command::Put(args) => {
            let workload = Arc::new(PutWorkload::new(&args)?);
            let channels = conn::connect(&connect_options(&global)).await?;
            let clients = conn::kv_clients(&channels, global.clients);
            let compactor = put::spawn_compactor(
                clients[0].clone(),
                args.compact_interval,
                args.compact_index_delta,
            );
            let outcome = drive(workload, clients, args.total, args.rate).await;
            if let Some(compactor) = compactor {
                compactor.abort();
            }
            // etcd prints the put report with Println: one extra newline.
            println!("{}", render(&global, &outcome?));
        }
        Command::Range(args) => {
            let (workload, banner) = RangeWorkload::new(&args)?;
            println!("{banner}");
            let channels = conn::connect(&connect_options(&global)).await?;
            let clients = conn::kv_clients(&channels, global.clients);
            let outcome = drive(Arc::new(workload), clients, args.total, args.rate).await?;
            print!("{}", render(&global, &outcome));
        }
        Command::Watch(args) => {
            let keys = watch::WatchedKeys::new(&args)?;
            let channels = conn::connect(&connect_options(&global)).await?;
            let clients = conn::kv_clients(&channels, global.clients);
            let started = std::time::Instant::now();
            let (streams, created) = watch::make_watches(&keys, &args, &channels).await?;
            let creation = Stats::new(started.elapsed(), created, Default::default());
            print!(
                "Watch creation summary:\n{}",
                render_stats(&global, &creation)
            );
            let owed = keys.events_owed(args.put_total);
            let puts = watch::WatchedPuts::new(&keys);
            let put_total = args.put_total;
            let put_rate = args.put_rate;
            let delivery = watch::deliver(
                streams,
                owed,
                async move {
                    drive(Arc::new(puts), clients, put_total, put_rate).await?;
                    Ok(())
                },
                std::time::Duration::from_secs(60),
            )
            .await?;
            let mut errors = delivery.failures;
            if delivery.missing > 0 {
                errors.insert(
                    format!(
                        "{} events not delivered within 60 s after the puts",
                        delivery.missing
                    ),
                    delivery.missing,
                );
            }
            let events = Stats::new(delivery.elapsed, delivery.latencies, errors);
            print!(
                "Watch events received summary:\n{}",
                render_stats(&global, &events)
            );
        }
        Command::LeaseKeepalive(args) => {
            let channels = conn::connect(&connect_options(&global)).await?;
            let outcome = lease::run(&args, &channels, global.clients).await?;
            if let Some(g) = outcome.grants {
                let grants = Stats::new(g.elapsed, g.latencies, g.errors);
                print!("Lease grant summary:\n{}", render_stats(&global, &grants));
            }
            let r = outcome.renewals;
            let renewals = Stats::new(r.elapsed, r.latencies, r.errors);
            let count = renewals.latencies.len();
            // etcd prints its report with Printf: no extra newline
            print!("{}", render_stats(&global, &renewals));
            if let Some(cpu) = outcome.server_cpu {
                println!(
                    "Server CPU: {cpu:.2} s for {count} keep-alives, {:.2} µs each",
                    cpu * 1e6 / count.max(1) as f64
                );
                if global.json {
                    println!(
                        "{{\"server_cpu_secs\":{cpu},\"server_cpu_per_request_us\":{}}}",
                        cpu * 1e6 / count.max(1) as f64
                    );
                }
            }
        }
        Command::TxnPut(args) => {
            let workload = Arc::new(TxnPutWorkload::new(&args)?);
            let channels = conn::connect(&connect_options(&global)).await?;
            let clients = conn::kv_clients(&channels, global.clients);
            let outcome = drive(workload, clients, args.total, args.rate).await?;
            // etcd prints this report with Println too
            println!("{}", render(&global, &outcome));
        }
    }
    Ok(())
}

fn connect_options(global: &GlobalArgs) -> ConnectOptions {
    ConnectOptions {
        endpoints: global.endpoints.clone(),
        conns: global.conns,
        dial_timeout: global.dial_timeout,
        target_leader: global.target_leader,
    }
}

async fn drive<W: Workload>(
    workload: Arc<W>,
    clients: Vec<KvClient<Channel>>,
    total: usize,
    rate: u64,
) -> Result<Outcome> {
    runner::run(workload, clients, total, RateLimiter::per_second(rate)).await
}

/// etcd's report, followed by the JSON line when `--json` is set.
fn render(global: &GlobalArgs, outcome: &Outcome) -> String {
    let stats = Stats::new(
        outcome.elapsed,
        outcome.latencies_secs(),
        outcome.errors.clone(),
    );
    let samples = global.sample.then(|| TimeSeries::new(outcome.samples()));
    render_with(global, &stats, samples.as_ref())
}

/// A report of measurements made outside the runner (the watch phases).
fn render_stats(global: &GlobalArgs, stats: &Stats) -> String {
    render_with(global, stats, None)
}

fn render_with(global: &GlobalArgs, stats: &Stats, samples: Option<&TimeSeries>) -> String {
    let precision = if global.precise {
        Precision::Full
    } else {
        Precision::FourDecimals
    };
    let mut text = stats.render(precision, samples);
    if global.json {
        text.push_str(&stats.json_line());
        text.push('\n');
    }
    text
}
