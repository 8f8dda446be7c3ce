//! Exit codes and the error that ends a command, as etcd's `pkg/cobrautl`
//! defines them: every failure prints `Error: <message>` on stderr and exits
//! with one of these codes.

/// Generic failure (gRPC errors, bad values).
pub const EXIT_ERROR: i32 = 1;
/// The client could not be built or connected.
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Malformed input on stdin (txn).
pub const EXIT_INVALID_INPUT: i32 = 3;
/// A valid flag with an unsupported value (output format, sort order, ...).
pub const EXIT_BAD_FEATURE: i32 = 4;
/// A long-running command ended by the server (`watch`).
pub const EXIT_INTERRUPTED: i32 = 5;
/// Wrong positional arguments.
pub const EXIT_BAD_ARGS: i32 = 128;

/// A failure that ends the process with `Error: {message}` and `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitError {
    pub code: i32,
    pub message: String,
    /// The reason was already reported (e.g. as a log line): print nothing.
    pub silent: bool,
}

impl ExitError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        ExitError {
            code,
            message: message.into(),
            silent: false,
        }
    }

    /// The same exit, without the `Error:` line.
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_ARGS, message)
    }

    pub fn bad_feature(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_FEATURE, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(EXIT_INVALID_INPUT, message)
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(EXIT_ERROR, message)
    }
}

/// Result of a command step.
pub type CtlResult<T = ()> = Result<T, ExitError>;
