//! `bench-node` entry point: parse flags, run, map the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    nodeguard_common::logging::init();
    let cli = bench_node::cli::Cli::parse();
    nodeguard_common::exit::main_with(bench_node::TOOL, || {
        bench_node::run(&cli, &mut std::io::stdout().lock())
    })
}
