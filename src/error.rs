//! Library error type. Every variant names the file or value at fault, so the binary can print
//! a one-line message and exit non-zero.

use std::path::PathBuf;

/// Errors from the scorefollow library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// An audio file could not be decoded (corrupt, truncated, not audio, unsupported).
    #[error("cannot decode audio {path}: {reason}")]
    Audio {
        /// The file.
        path: PathBuf,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A MIDI file could not be parsed or holds no notes.
    #[error("bad MIDI file {path}: {reason}")]
    Midi {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A MusicXML score could not be read; `line` is 0 when no line applies.
    #[error("{}: {reason}", located(.path, *.line))]
    MusicXml {
        /// The file (inside an `.mxl` archive: the archive joined with the rootfile's name).
        path: PathBuf,
        /// Line (1-based) of the fault, 0 when none applies.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user-supplied value (address, option, file contents) is invalid.
    #[error("invalid {what} '{value}': {reason}")]
    Invalid {
        /// What the value is (an option, a setting, a file's role).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused and what would be accepted.
        reason: String,
    },
    /// An audio device could not be found or opened.
    #[error("audio device: {0}")]
    Device(String),
    /// A parse error in a text file at a given line (1-based).
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line at fault (1-based).
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// Anything else the library reports, with context.
    #[error("{0}")]
    Other(String),
}

/// `path:line`, or `path` alone for line 0.
fn located(path: &std::path::Path, line: usize) -> String {
    if line > 0 {
        format!("{}:{line}", path.display())
    } else {
        path.display().to_string()
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Build an [`Error::Invalid`].
    pub fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
