//! `fim-check` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(fim_check::TOOL, || anyhow::bail!("not implemented yet"))
}
