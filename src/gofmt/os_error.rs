//! OS errors as Go prints them.

/// The C library's text for an OS error, as Go's `syscall.Errno` prints it:
/// lower case, without Rust's " (os error N)" ("address already in use").
pub fn os_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let head = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = head.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_errno_text_as_go() {
        let err = std::io::Error::from_raw_os_error(98);
        assert_eq!(os_error_text(&err), "address already in use");
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(os_error_text(&err), "no such file or directory");
    }
}
