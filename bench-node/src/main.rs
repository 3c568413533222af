//! `bench-node` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`bench_node::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<bench_node::cli::Cli, _>(bench_node::TOOL, bench_node::run)
}
