//! `detect-host` entry point: parse, log to stderr, run, map to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = detect_host::cli::Cli::parse();
    nodeguard_common::logging::init();
    nodeguard_common::exit::main_with(detect_host::TOOL, || detect_host::run(&cli))
}
