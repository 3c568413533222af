//! `detect-host` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(detect_host::TOOL, || anyhow::bail!("not implemented yet"))
}
