//! `install-agent` entry point: parse, log to stderr, run, exit.

use clap::Parser;

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(install_agent::TOOL, || {
        let cli = install_agent::cli::Cli::parse();
        nodeguard_common::logging::init();
        install_agent::run(&cli, &mut std::io::stdout().lock())
    })
}
