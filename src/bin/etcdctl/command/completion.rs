//! `etcdctl completion bash|fish|powershell|zsh`: the shell's completion
//! script, written from etcdctl's own command tree (`clap_tree`), so it
//! completes exactly the commands and flags this etcdctl has.

pub use clap_complete::Shell;

use crate::exit::{CtlResult, ExitError};

pub fn run(shell: Shell) -> CtlResult {
    use std::io::Write as _;
    let mut command = crate::clap_tree::etcdctl_command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "etcdctl", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| ExitError::new(1, format!("write the completion script: {e}")))
}
