//! `fim-check` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`fim_check::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<fim_check::cli::Cli, _>(fim_check::TOOL, fim_check::run)
}
