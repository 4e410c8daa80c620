use std::process::ExitCode;

fn main() -> ExitCode {
    scorefollow::cli::main()
}
