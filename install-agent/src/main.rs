//! `install-agent` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(install_agent::TOOL, || anyhow::bail!("not implemented yet"))
}
