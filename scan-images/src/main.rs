//! `scan-images` entry point: parse the command line, log to stderr, run with the
//! report going to stdout, and map the result to the exit code (one line on
//! stderr per error). Everything else is in the library: [`scan_images::run`].

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main::<scan_images::cli::Cli, _>(scan_images::TOOL, scan_images::run)
}
