//! `cluster-report` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`cluster_report::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<cluster_report::Cli, _>(
        cluster_report::TOOL,
        cluster_report::run,
    )
}
