//! `nodeguard-gen-docs OUT_DIR`: the man pages and shell completions of
//! every tool, generated from the same clap definitions the binaries parse
//! with, so they never drift from `--help`:
//!
//! - `OUT_DIR/man/man1/<tool>.1` (and one page per subcommand, e.g.
//!   `fim-check-check.1`);
//! - `OUT_DIR/completions/bash/<tool>`, `…/zsh/_<tool>`,
//!   `…/fish/<tool>.fish`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: nodeguard-gen-docs OUT_DIR")?;
    for command in commands() {
        write_docs(&out, command)?;
    }
    Ok(())
}

/// Every tool's command, with the `--version` text the binaries print.
fn commands() -> Vec<clap::Command> {
    [
        detect_host::cli::Cli::command(),
        install_agent::cli::Cli::command(),
        scan_images::cli::Cli::command(),
        fim_check::cli::Cli::command(),
        bench_node::cli::Cli::command(),
        cluster_report::Cli::command(),
    ]
    .into_iter()
    .map(|c| c.version(nodeguard_common::version::VERSION_LINE))
    .collect()
}

fn write_docs(out: &Path, command: clap::Command) -> Result<()> {
    // `help` as a subcommand is not worth a page of its own.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let name = command.get_name().to_string();
    let man = out.join("man/man1");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("man pages of {name}"))?;
    // Where each shell looks a command's completion up by its name.
    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(file);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut buf);
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
