//! `not_configured`: what is still a placeholder, and exactly which values
//! fill it in.
//!
//! A shipped profile carries all-zero sha256 sums and image paths where no
//! package has been baked in yet, and a fresh install has no Secret. None
//! of that is an error of the host or of install-agent: it is a setting
//! nobody made yet. `plan`, `status` and `install` report it as
//! `status: "not_configured"` with one entry per gap, each naming the chart
//! value and the profile field that fill it (install exits 8), so the
//! bootstrap pod stays up, unready, with one clear line per cycle.

use std::path::Path;

use serde::Serialize;

use crate::profile::{PackageEntry, Profile};
use crate::select::Selection;

/// One setting that is still missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotConfigured {
    /// What is missing, for people.
    pub what: String,
    /// The chart values and profile fields that fill it in (any one will do).
    pub set: Vec<String>,
}

/// The gaps for the package chosen for this host and for the credentials.
/// `package_exists` answers whether an image path holds a file.
pub fn gaps(
    profile: &Profile,
    sel: &Selection<'_>,
    missing_credentials: &[String],
    package_exists: &dyn Fn(&Path) -> bool,
) -> Vec<NotConfigured> {
    let mut gaps = Vec::new();
    let entry = sel.entry;
    let which = format!("{}/{}", entry.format, entry.arch);
    let chart = chart_package(profile, entry);
    let field = profile_field(profile, entry);
    if entry.sha256_is_placeholder() {
        gaps.push(NotConfigured {
            what: format!(
                "the sha256 of the {which} package is the all-zero placeholder"
            ),
            set: vec![
                chart.as_ref().map_or_else(
                    || format!("bootstrap.packages (an entry {{format: {}, arch: {}, version, url or path, sha256}})", entry.format, entry.arch),
                    |i| format!("bootstrap.packages[{i}].sha256"),
                ),
                format!("{field} sha256"),
            ],
        });
    }
    if let Some(path) = &entry.path {
        if !package_exists(path) {
            gaps.push(NotConfigured {
                what: format!(
                    "the {which} package file {} is not in the image",
                    path.display()
                ),
                set: vec![
                    chart.as_ref().map_or_else(
                        || format!("bootstrap.packages (an entry {{format: {}, arch: {}, version, url or path, sha256}})", entry.format, entry.arch),
                        |i| format!("bootstrap.packages[{i}].url (or a path that exists in the image)"),
                    ),
                    format!("{field} url, or build the image with {}", path.display()),
                ],
            });
        }
    }
    for name in missing_credentials {
        let spellings: Vec<&str> = profile.credential_spellings(name).collect();
        gaps.push(NotConfigured {
            what: format!("the required credential {name} is missing"),
            set: vec![
                chart_credential(name),
                format!(
                    "credentials.existingSecret with the key {}",
                    spellings.join(" or ")
                ),
                format!("the file {name} in --credentials-dir ([credentials] required)"),
            ],
        });
    }
    gaps
}

/// The index of the entry in `bootstrap.packages` when the list came from
/// `--packages-file` (the chart renders it in order).
fn chart_package(profile: &Profile, entry: &PackageEntry) -> Option<usize> {
    profile.packages_file.as_ref()?;
    profile.packages.iter().position(|p| p == entry)
}

fn profile_field(profile: &Profile, entry: &PackageEntry) -> String {
    match &profile.packages_file {
        Some(file) => format!(
            "--packages-file {} [[package]] {}/{}",
            file.display(),
            entry.format,
            entry.arch
        ),
        None => format!(
            "profile {} [[package]] {}/{}",
            profile.name, entry.format, entry.arch
        ),
    }
}

/// The chart value carrying a credential: the Qualys chart's names where
/// they exist, else `credentials.values.<name>`.
pub fn chart_credential(name: &str) -> String {
    match name {
        "activation_id" => "credentials.activationId".to_owned(),
        "customer_id" => "credentials.customerId".to_owned(),
        "server_uri" => "config.serverUri".to_owned(),
        "https_proxy" => "config.httpsProxy".to_owned(),
        other => format!("credentials.values.{other}"),
    }
}

/// One line for the report's `reason` and the log.
pub fn summary(gaps: &[NotConfigured]) -> String {
    let parts: Vec<String> = gaps
        .iter()
        .map(|g| format!("{} (set {})", g.what, g.set.join(" or ")))
        .collect();
    format!("not configured: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::select::Installer;

    fn qualys() -> Profile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/qualys-cloud-agent.toml");
        Profile::load(&path).expect("shipped profile")
    }

    #[test]
    fn shipped_qualys_profile_names_every_value_to_set() {
        let p = qualys();
        let sel = Selection {
            entry: &p.packages[0],
            installer: Installer::AptGet,
        };
        let missing = vec!["activation_id".to_owned(), "customer_id".to_owned()];
        let gaps = gaps(&p, &sel, &missing, &|_| false);
        assert_eq!(gaps.len(), 4, "{gaps:#?}");
        assert!(gaps[0].what.contains("placeholder"));
        assert!(
            gaps[0].set[0].starts_with("bootstrap.packages ("),
            "{:?}",
            gaps[0].set
        );
        assert!(gaps[0].set[1].contains("[[package]] deb/amd64 sha256"));
        assert!(gaps[1]
            .what
            .contains("/opt/nodeguard/packages/QualysCloudAgent_x64.deb"));
        assert_eq!(gaps[2].set[0], "credentials.activationId");
        assert!(gaps[2].set[1].contains("activation_id or ACTIVATION_ID"));
        assert_eq!(gaps[3].set[0], "credentials.customerId");
        let line = summary(&gaps);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_packages_file_entry_is_named_by_its_chart_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("packages.toml");
        let zero = "0".repeat(64);
        std::fs::write(
            &file,
            format!("[[package]]\nformat = \"rpm\"\narch = \"amd64\"\nversion = \"1\"\nurl = \"https://m/a.rpm\"\nsha256 = \"{}\"\n[[package]]\nformat = \"deb\"\narch = \"amd64\"\nversion = \"1\"\nurl = \"https://m/a.deb\"\nsha256 = \"{zero}\"\n", "1".repeat(64)),
        )
        .expect("write");
        let mut p = qualys();
        p.use_packages_file(&file).expect("file");
        let sel = Selection {
            entry: &p.packages[1],
            installer: Installer::AptGet,
        };
        let gaps = gaps(&p, &sel, &[], &|_| true);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].set[0], "bootstrap.packages[1].sha256");
        let sel = Selection {
            entry: &p.packages[0],
            installer: Installer::Rpm,
        };
        assert!(super::gaps(&p, &sel, &[], &|_| true).is_empty());
    }

    #[test]
    fn other_agents_credentials_map_to_credentials_values() {
        assert_eq!(
            chart_credential("manager_address"),
            "credentials.values.manager_address"
        );
    }
}
