//! The `scorefollow` command line: a thin binary over the library ([`scorefollow::cli`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    scorefollow::cli::main()
}
