//! `fim-check` entry point: parse arguments, run, map to the exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    nodeguard_common::logging::init();
    let cli = fim_check::cli::Cli::parse();
    nodeguard_common::exit::main_with(fim_check::TOOL, || fim_check::run(cli))
}
