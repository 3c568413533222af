//! `cluster-report` entry point: parse the command line, run, exit.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cluster_report::Cli::parse();
    nodeguard_common::logging::init();
    nodeguard_common::exit::main_with(cluster_report::TOOL, || cluster_report::run(&cli))
}
