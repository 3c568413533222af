//! `cluster-report` entry point (not implemented yet).

fn main() -> std::process::ExitCode {
    nodeguard_common::exit::main_with(cluster_report::TOOL, || {
        anyhow::bail!("not implemented yet")
    })
}
