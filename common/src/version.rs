//! The version every tool prints with `--version`: the package version and
//! the commit it was built from (see `common/build.rs`).

/// The commit the binaries were built from (`git rev-parse --short HEAD`,
/// else `NODEGUARD_BUILD_COMMIT`, else `unknown`).
pub const COMMIT: &str = env!("NODEGUARD_BUILD_COMMIT");

/// `0.1.0 (commit 1a2b3c4)`: what `--version` prints after the tool's name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NODEGUARD_BUILD_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_version_and_commit() {
        assert!(super::VERSION_LINE.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(super::VERSION_LINE.ends_with(&format!("(commit {})", super::COMMIT)));
        assert!(!super::COMMIT.is_empty());
    }
}
