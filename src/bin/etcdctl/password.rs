//! Password prompts, as etcdctl asks them through bgentry/speakeasy: the
//! prompt on stdout, terminal echo switched off by running `/bin/stty
//! -echo` (whose complaint about a non-terminal stdin shows on stderr, as
//! with etcdctl), one line read from stdin byte by byte (end of input ends
//! it), a newline after it, echo back on.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

/// Asks for a password; the answer has surrounding whitespace removed.
pub fn ask(prompt: &str) -> Result<String, String> {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(prompt.as_bytes());
    let _ = stdout.flush();
    stty("-echo")?;
    let line = read_line();
    println!();
    let _ = stdout.flush();
    stty("echo")?;
    let line = line.map_err(|err| format!("failed during password entry: {err}"))?;
    Ok(line.trim().to_string())
}

/// speakeasy (as etcd vendors it) runs this stty, whatever `$PATH` says.
const STTY: &str = "/bin/stty";

/// Runs `stty <arg>` on our own stdin, stdout and stderr.
fn stty(arg: &str) -> Result<(), String> {
    // argv[0] is "stty", as speakeasy passes it (stty names itself in errors).
    let status = Command::new(STTY)
        .arg0("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    match status {
        Ok(_) => Ok(()),
        // speakeasy gives up only when echo cannot be turned off at all.
        Err(err) if arg == "-echo" => Err(format!(
            "failed turning off console echo for password entry:\n\t{err}"
        )),
        Err(_) => Ok(()),
    }
}

/// One line from stdin, read a byte at a time so nothing after it is
/// consumed (a later prompt reads the next line).
fn read_line() -> std::io::Result<String> {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}
