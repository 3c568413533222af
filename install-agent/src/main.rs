//! `install-agent` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`install_agent::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<install_agent::cli::Cli, _>(
        install_agent::TOOL,
        install_agent::run,
    )
}
