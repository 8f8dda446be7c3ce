//! The `put` benchmark: fixed-size keys holding a zigzag varint of the key
//! index (as etcd's benchmark writes them), one random value shared by all
//! requests, and optional periodic compaction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use rsetcd::client::status_text;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Status;

use crate::cli::PutArgs;
use crate::runner::Workload;

pub struct PutWorkload {
    key_size: usize,
    value: Vec<u8>,
    key_space: u64,
    sequential: bool,
    seed: u64,
}

impl PutWorkload {
    pub fn new(args: &PutArgs) -> Result<PutWorkload> {
        if args.key_space_size <= 0 {
            bail!(
                "expected positive --key-space-size, got ({})",
                args.key_space_size
            );
        }
        let key_space = args.key_space_size as u64;
        let needed = varint_len(key_space as i64 - 1);
        if args.key_size < needed {
            bail!(
                "--key-size {} is too small for --key-space-size {}: keys need {needed} bytes",
                args.key_size,
                args.key_space_size
            );
        }
        let seed = run_seed();
        Ok(PutWorkload {
            key_size: args.key_size,
            value: value_from_seed(seed, args.val_size),
            key_space,
            sequential: args.sequential_keys,
            seed,
        })
    }

    fn key(&self, index: usize) -> Vec<u8> {
        let key_index = if self.sequential {
            index as u64 % self.key_space
        } else {
            splitmix64(self.seed.wrapping_add(index as u64)) % self.key_space
        };
        varint_key(key_index, self.key_size)
    }
}

impl Workload for PutWorkload {
    async fn issue(&self, kv: &mut KvClient<Channel>, index: usize) -> Result<(), Status> {
        let request = PutRequest {
            key: self.key(index),
            value: self.value.clone(),
            ..Default::default()
        };
        kv.put(request).await.map(drop)
    }
}

/// Every `interval`, compacts to `delta` revisions behind the current one
/// (the revision is read from a range of "foo", as etcd's benchmark does).
/// Failures are reported and the benchmark goes on.
pub fn spawn_compactor(
    kv: KvClient<Channel>,
    interval: Duration,
    delta: i64,
) -> Option<JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(status) = compact_once(kv.clone(), delta).await {
                eprintln!("compaction failed: {}", status_text(&status));
            }
        }
    }))
}

async fn compact_once(mut kv: KvClient<Channel>, delta: i64) -> Result<(), Status> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let mut read = tonic::Request::new(RangeRequest {
        key: b"foo".to_vec(),
        ..Default::default()
    });
    read.set_timeout(TIMEOUT);
    let revision = kv
        .range(read)
        .await?
        .into_inner()
        .header
        .map_or(0, |header| header.revision);
    let mut compact = tonic::Request::new(CompactionRequest {
        revision: (revision - delta).max(0),
        physical: false,
    });
    compact.set_timeout(TIMEOUT);
    kv.compact(compact).await.map(drop)
}

/// `len` random bytes: the one value every request of a run writes.
pub fn random_value(len: usize) -> Vec<u8> {
    value_from_seed(run_seed(), len)
}

/// A seed that differs from run to run.
pub fn run_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32)
}

fn value_from_seed(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| splitmix64(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407)) as u8)
        .collect()
}

/// A key as etcd's tool makes one: `key_size` bytes holding the varint of
/// `index` (cut at `key_size` when it is longer: etcd's tools keep their
/// key spaces small enough that it never is; `put` refuses such a size).
pub fn varint_key(index: u64, key_size: usize) -> Vec<u8> {
    let mut key = vec![0u8; key_size.max(10)];
    put_varint(&mut key, index as i64);
    key.truncate(key_size);
    key
}

/// Go's `binary.PutVarint`: zigzag, then base-128 little-endian groups.
/// `buf` must hold `varint_len(value)` bytes.
fn put_varint(buf: &mut [u8], value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while zigzag >= 0x80 {
        buf[i] = zigzag as u8 | 0x80;
        zigzag >>= 7;
        i += 1;
    }
    buf[i] = zigzag as u8;
    i + 1
}

fn varint_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

/// A stateless mixer: good enough spread for picking keys and value bytes.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn workload(args: &[&str]) -> Result<PutWorkload> {
        let cli = Cli::try_parse_from(["benchmark", "put"].iter().chain(args)).expect("parses");
        let Command::Put(put) = cli.command else {
            panic!("expected put");
        };
        PutWorkload::new(&put)
    }

    #[test]
    fn keys_are_zigzag_varints_padded_to_key_size() {
        let put = workload(&["--sequential-keys", "--key-space-size=1000"]).unwrap();
        assert_eq!(put.key(0), vec![0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(put.key(1), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(put.key(64), vec![0x80, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(put.key(1001), put.key(1));
        assert_eq!(put.value.len(), 8);
    }

    #[test]
    fn random_keys_stay_in_key_space() {
        let put = workload(&["--key-space-size=3", "--key-size=2"]).unwrap();
        let allowed = [vec![0, 0], vec![2, 0], vec![4, 0]];
        for i in 0..100 {
            assert!(allowed.contains(&put.key(i)), "{:?}", put.key(i));
        }
    }

    #[test]
    fn rejects_bad_key_space() {
        let err = workload(&["--key-space-size=0"]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "expected positive --key-space-size, got (0)"
        );
        assert!(workload(&["--key-space-size=100000", "--key-size=2"]).is_err());
    }
}
