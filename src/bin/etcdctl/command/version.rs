//! `etcdctl version`: prints etcdctl's version and API version.

use crate::cli::{API_VERSION, VERSION};
use crate::exit::CtlResult;

pub fn run() -> CtlResult {
    println!("etcdctl version: {VERSION}");
    println!("API version: {API_VERSION}");
    Ok(())
}
