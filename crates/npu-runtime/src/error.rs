//! Error type shared by every runtime entry point. Nothing in this crate panics on bad input:
//! callers (the C++/Python bridge) turn these into exceptions.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidDevice,
    OutOfMemory,
    InvalidArgument,
    /// An error raised by device work (a launched closure), reported at a synchronization point.
    Kernel,
}

#[derive(Debug, Clone)]
pub struct RtError {
    pub kind: ErrorKind,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, RtError>;

impl RtError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        RtError { kind, msg: msg.into() }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, msg)
    }
}

impl fmt::Display for RtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for RtError {}
