//! `detect-host` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`detect_host::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<detect_host::cli::Cli, _>(detect_host::TOOL, detect_host::run)
}
