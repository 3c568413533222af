//! Command-line interface.

use clap::Parser;
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit;

const ABOUT_OUTPUT: &str = "\
Reads the host under --host-root (never the machine the tool runs on, \
except for the shared kernel's uname) and prints one JSON document: \
os (id, id_like, version_id, family, immutable, source, ...), package \
(format, manager, manager_present), arch, kernel, init, runtime, warnings. \
An unrecognised OS is reported as os.id \"unknown\" with a warning, not as \
an error.";

/// What the exit codes mean (shared wording from nodeguard-common).
fn after_help() -> String {
    let codes = exit::help(&[
        (exit::SUCCESS, "success (the report is on stdout)"),
        (
            exit::ERROR,
            "the host root is missing or unreadable, the metrics file or stdout failed",
        ),
    ]);
    format!("{ABOUT_OUTPUT}\n\n{codes}")
}

/// What the host is: OS, family, package manager, architecture, init system
/// and container runtime, read under a host root.
#[derive(Debug, Parser)]
#[command(name = "detect-host", version, about, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_flags() {
        let cli = Cli::try_parse_from(["detect-host", "--host-root", "/host", "--pretty"])
            .expect("parses");
        assert_eq!(cli.common.host_root, std::path::Path::new("/host"));
        assert!(cli.common.pretty);
    }

    #[test]
    fn rejects_unknown_flags() {
        assert!(Cli::try_parse_from(["detect-host", "--frobnicate"]).is_err());
    }
}
