//! `bench-node` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(bench_node::TOOL, || anyhow::bail!("not implemented yet"))
}
