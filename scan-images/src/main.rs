//! `scan-images` entry point: parse flags, run, map the result to the exit
//! code (see `scan-images --help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = scan_images::cli::Cli::parse();
    nodeguard_common::logging::init();
    nodeguard_common::exit::main_with(scan_images::TOOL, || {
        scan_images::run(&cli, &mut std::io::stdout().lock())
    })
}
