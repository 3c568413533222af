//! `scan-images` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(scan_images::TOOL, || anyhow::bail!("not implemented yet"))
}
