//! journald's native protocol: one datagram per entry to
//! `/run/systemd/journal/socket`, holding `FIELD=value` lines (or, for a
//! value containing a newline, the field name, a newline, the value's
//! length as 64-bit little endian, the value and a newline). An entry too
//! large for a datagram goes in a sealed memfd passed with SCM_RIGHTS, as
//! sd_journal_send(3) does.

use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native-protocol entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// Checks that journald's socket takes datagrams, as etcd does before
    /// choosing the systemd/journal output.
    pub fn connect(path: &Path) -> io::Result<Journal> {
        let probe = UnixDatagram::unbound()?;
        probe.connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "can't find journal (dial unixgram {}: connect: {})",
                    path.display(),
                    describe(&e)
                ),
            )
        })?;
        Ok(Journal {
            socket: UnixDatagram::unbound()?,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry.
    pub fn send(&self, fields: &[(String, String)]) -> io::Result<()> {
        let entry = encode(fields);
        match self.socket.send_to(&entry, &self.path) {
            Ok(_) => Ok(()),
            Err(e) if is_too_large(&e) => self.send_via_memfd(&entry),
            Err(e) => Err(e),
        }
    }

    fn send_via_memfd(&self, entry: &[u8]) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, SealFlag};
        use nix::sys::memfd::{memfd_create, MFdFlags};
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
        let fd = memfd_create(
            "journal-entry",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(entry)?;
        // journald accepts only a sealed memfd: the entry cannot change
        // under it.
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        let addr = UnixAddr::new(&self.path)?;
        let fds = [file.as_raw_fd()];
        sendmsg(
            self.socket.as_raw_fd(),
            &[],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )?;
        Ok(())
    }
}

fn is_too_large(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMSGSIZE || code == nix::libc::ENOBUFS
    )
}

/// The lower-case text Go prints for an errno ("no such file or directory").
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Encodes an entry in the native protocol.
pub fn encode(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A journal field name for a log field: upper case letters, digits and
/// underscores, not starting with an underscore or digit (journald drops
/// other names), at most 64 bytes.
pub fn field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c == '_' || c.is_ascii_digit()) {
        out.insert(0, 'F');
    }
    out.truncate(64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn encodes_plain_and_multiline_values() {
        let entry = encode(&fields(&[("MESSAGE", "hi"), ("STACK", "a\nb")]));
        let mut want = b"MESSAGE=hi\nSTACK\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(entry, want);
    }

    #[test]
    fn field_names_are_journal_safe() {
        assert_eq!(field_name("local-member-id"), "LOCAL_MEMBER_ID");
        assert_eq!(field_name("_private"), "F_PRIVATE");
        assert_eq!(field_name("1st"), "F1ST");
    }

    #[test]
    fn sends_datagrams_and_memfds_to_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).expect("bind");
        let journal = Journal::connect(&path).expect("connect");
        journal
            .send(&fields(&[("MESSAGE", "hello"), ("PRIORITY", "6")]))
            .expect("send");
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"MESSAGE=hello\nPRIORITY=6\n");

        // Larger than any datagram the kernel accepts: goes as a memfd.
        let big = "x".repeat(4 << 20);
        journal
            .send(&fields(&[("MESSAGE", &big)]))
            .expect("send big");
        let mut data = [0u8; 16];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let msg = nix::sys::socket::recvmsg::<()>(
            server.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .expect("recvmsg");
        let fd = msg
            .cmsgs()
            .expect("cmsgs")
            .find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd");
        // SAFETY: the fd was just received and is owned by nobody else.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // The sender's writes moved the shared offset to the end.
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).expect("seek");
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut content).expect("read memfd");
        assert_eq!(content.len(), "MESSAGE=\n".len() + big.len());
        assert!(content.starts_with(b"MESSAGE=xxx"));
    }

    #[test]
    fn missing_socket_reads_as_etcd_says_it() {
        let e = Journal::connect(Path::new("/nonexistent/journal/socket"))
            .err()
            .expect("no journal");
        assert_eq!(
            e.to_string(),
            "can't find journal (dial unixgram /nonexistent/journal/socket: connect: no such file or directory)"
        );
    }
}
