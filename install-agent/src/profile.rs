//! Agent profiles: the TOML description of one vendor agent.
//!
//! A profile says which package to install on which host (one `[[package]]`
//! entry per format/architecture, each pinned by sha256), which config files
//! to render from the credential files of a mounted Secret, how to activate
//! and verify the agent, and what to remove on uninstall. The format is
//! documented in `docs/install-agent.md`; `profiles/*.toml` are the shipped
//! examples. Parsing is strict (`deny_unknown_fields`): a typo in a profile
//! is an error naming the key, never a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::template::Template;

/// Largest profile we read; a real one is a few KiB.
const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// Package formats a profile can ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// Debian package, installed with apt-get/dpkg.
    Deb,
    /// RPM package, installed with dnf/yum/zypper/rpm.
    Rpm,
}

impl PackageFormat {
    /// The lower-case name used in profiles and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deb => "deb",
            Self::Rpm => "rpm",
        }
    }
}

impl fmt::Display for PackageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU architectures, in Debian/Kubernetes naming (`amd64`, `arm64`).
///
/// Only these two map to packages: any other machine is unsupported rather
/// than served a "generic" package, as some bootstrappers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86_64.
    Amd64,
    /// aarch64.
    Arm64,
}

impl Arch {
    /// Map a kernel machine name (`uname -m`) or a distribution's name for it.
    pub fn from_machine(machine: &str) -> Option<Self> {
        match machine {
            "x86_64" | "amd64" | "x64" => Some(Self::Amd64),
            "aarch64" | "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }

    /// The name used in profiles and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amd64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent profile, as parsed and validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Agent name: used in reports, metrics labels and host state paths.
    pub name: String,
    /// systemd unit of the agent (`.service` may be omitted).
    pub service: String,
    /// Package name in the host's package database (default: `name`).
    #[serde(default)]
    pub package_name: Option<String>,
    /// The packages, one per format and architecture.
    #[serde(rename = "package")]
    pub packages: Vec<PackageEntry>,
    /// Credential files the profile reads from the credentials directory.
    #[serde(default)]
    pub credentials: CredentialSpec,
    /// Non-secret template values with defaults (a credential file of the
    /// same name overrides them).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
    /// Config files rendered on the host.
    #[serde(default, rename = "config")]
    pub configs: Vec<ConfigFile>,
    /// Optional activation command, run after install or reconfiguration.
    #[serde(default)]
    pub activate: Option<HostStep>,
    /// How to verify the agent is working.
    #[serde(default)]
    pub verify: Option<Verify>,
    /// What uninstall removes besides the package and config files.
    #[serde(default)]
    pub uninstall: UninstallSpec,
}

/// One package of the agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageEntry {
    /// deb or rpm.
    pub format: PackageFormat,
    /// amd64 or arm64.
    pub arch: Arch,
    /// The version the package database reports once it is installed
    /// (dpkg `Version`, rpm `VERSION-RELEASE` or just `VERSION`).
    pub version: String,
    /// HTTPS URL to download from (exclusive with `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Path of the package inside the install-agent image (exclusive with `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Lower-case hex sha256 of the package file. Required.
    pub sha256: String,
    /// Package name override for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which credential files the profile uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// Files that must exist in the credentials directory.
    #[serde(default)]
    pub required: Vec<String>,
    /// Files that may exist; templates drop what references a missing one.
    #[serde(default)]
    pub optional: Vec<String>,
}

/// A config file written on the host (root-owned, atomically).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// Template text; see [`crate::template`] for the syntax.
    pub template: String,
    /// Octal mode, default `0600`.
    #[serde(default = "default_config_mode")]
    pub mode: String,
    /// Only for hosts installing this package format.
    #[serde(default)]
    pub format: Option<PackageFormat>,
    /// Only when this credential or value is present.
    #[serde(default)]
    pub when: Option<String>,
}

fn default_config_mode() -> String {
    "0600".to_owned()
}

impl ConfigFile {
    /// The file mode as a number (validated at load time).
    pub fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or(0o600)
    }
}

/// A command run on the host with a timeout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostStep {
    /// argv; elements are templates, an element with a missing optional
    /// value is dropped.
    pub command: Vec<String>,
    /// Seconds before the command is killed (default 120).
    #[serde(default = "default_step_timeout")]
    pub timeout_secs: u64,
}

fn default_step_timeout() -> u64 {
    120
}

impl HostStep {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// How the agent is verified after start (and by `status`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// A host command that exits 0 when the agent works.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A host file that must exist.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// With `file`: a substring the file must contain (e.g. a log line).
    #[serde(default)]
    pub contains: Option<String>,
    /// Seconds to keep trying before giving up (default 30).
    #[serde(default = "default_verify_timeout")]
    pub timeout_secs: u64,
}

fn default_verify_timeout() -> u64 {
    30
}

/// What uninstall does beyond stopping the service and removing the package.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UninstallSpec {
    /// Commands run (best effort) before the package is removed.
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
    /// Host paths removed after the package on every uninstall (config,
    /// credentials-bearing files).
    #[serde(default)]
    pub remove: Vec<PathBuf>,
    /// Host paths removed only with `--purge` (logs, agent identity).
    #[serde(default)]
    pub purge: Vec<PathBuf>,
}

impl Profile {
    /// Read and validate a profile file.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        ensure!(
            meta.len() <= MAX_PROFILE_BYTES,
            "profile {} is larger than {MAX_PROFILE_BYTES} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        Self::parse_from(&text, &path.display().to_string())
    }

    /// Parse and validate profile text.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_from(text, "profile")
    }

    /// Parse and validate profile text read from `source`: a TOML error is
    /// `source:line:column: message`, a validation error names `source`.
    fn parse_from(text: &str, source: &str) -> Result<Self> {
        let profile: Profile = nodeguard_common::input::parse_toml(text, source)?;
        profile
            .validate()
            .with_context(|| format!("invalid profile {source}"))?;
        Ok(profile)
    }

    /// The package name for an entry.
    pub fn package_name<'a>(&'a self, entry: &'a PackageEntry) -> &'a str {
        entry
            .name
            .as_deref()
            .or(self.package_name.as_deref())
            .unwrap_or(&self.name)
    }

    /// The systemd unit name, with `.service` appended when missing.
    pub fn unit(&self) -> String {
        if self.service.contains('.') {
            self.service.clone()
        } else {
            format!("{}.service", self.service)
        }
    }

    /// Every template key the profile may use that is a credential file.
    pub fn credential_names(&self) -> impl Iterator<Item = &str> {
        self.credentials
            .required
            .iter()
            .chain(&self.credentials.optional)
            .map(String::as_str)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            is_safe_name(&self.name),
            "name {:?} must be [A-Za-z0-9._-]+",
            self.name
        );
        ensure!(
            is_safe_name(self.service.trim_end_matches(".service")),
            "service {:?} must be a plain unit name",
            self.service
        );
        ensure!(
            !self.packages.is_empty(),
            "at least one [[package]] is required"
        );
        for (i, p) in self.packages.iter().enumerate() {
            validate_package(p).with_context(|| format!("[[package]] #{}", i + 1))?;
            let dup = self.packages[..i]
                .iter()
                .any(|q| q.format == p.format && q.arch == p.arch);
            ensure!(!dup, "two [[package]] entries for {}/{}", p.format, p.arch);
        }
        for name in self.credential_names() {
            ensure!(
                is_safe_name(name),
                "credential name {name:?} must be [A-Za-z0-9._-]+"
            );
        }
        for cfg in &self.configs {
            self.validate_config(cfg)?;
        }
        self.validate_steps()
    }

    /// Whether a template key names a credential or a profile value.
    fn knows(&self, key: &str) -> bool {
        self.credential_names().any(|c| c == key) || self.values.contains_key(key)
    }

    fn validate_config(&self, cfg: &ConfigFile) -> Result<()> {
        let known = |key: &str| self.knows(key);
        let ctx = || format!("[[config]] {}", cfg.path.display());
        ensure!(cfg.path.is_absolute(), "{}: path must be absolute", ctx());
        ensure!(
            !cfg.path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir)),
            "{}: path must not contain ..",
            ctx()
        );
        let mode = u32::from_str_radix(&cfg.mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| format!("{}: mode {:?} is not octal", ctx(), cfg.mode))?;
        ensure!(
            mode & 0o077 == 0 || !self.references_credential(&cfg.template),
            "{}: a file holding credentials must not be group/world accessible (mode {})",
            ctx(),
            cfg.mode
        );
        let tpl = Template::parse(&cfg.template).with_context(ctx)?;
        for key in tpl.keys() {
            ensure!(known(key), "{}: template uses unknown value {key:?}", ctx());
        }
        if let Some(when) = &cfg.when {
            ensure!(
                known(when),
                "{}: `when` names unknown value {when:?}",
                ctx()
            );
        }
        Ok(())
    }

    fn validate_steps(&self) -> Result<()> {
        let known = |key: &str| self.knows(key);
        let steps = self
            .activate
            .iter()
            .map(|s| &s.command)
            .chain(self.verify.iter().filter_map(|v| v.command.as_ref()))
            .chain(&self.uninstall.commands);
        for argv in steps {
            ensure!(!argv.is_empty(), "a host command must not be empty");
            ensure!(
                argv[0].starts_with('/'),
                "host command {:?} must be an absolute path",
                argv[0]
            );
            for arg in argv {
                for key in Template::parse(arg)?.keys() {
                    ensure!(
                        known(key),
                        "command {:?} uses unknown value {key:?}",
                        argv[0]
                    );
                }
            }
        }
        if let Some(v) = &self.verify {
            ensure!(
                v.command.is_some() || v.file.is_some(),
                "[verify] needs `command` or `file`"
            );
            ensure!(
                v.contains.is_none() || v.file.is_some(),
                "[verify] `contains` needs `file`"
            );
        }
        for p in self.uninstall.remove.iter().chain(&self.uninstall.purge) {
            ensure!(
                p.is_absolute() && p != Path::new("/"),
                "uninstall path {} must be absolute and not /",
                p.display()
            );
        }
        Ok(())
    }

    fn references_credential(&self, template: &str) -> bool {
        Template::parse(template)
            .map(|t| t.keys().any(|k| self.credential_names().any(|c| c == k)))
            .unwrap_or(true)
    }
}

fn validate_package(p: &PackageEntry) -> Result<()> {
    ensure!(!p.version.trim().is_empty(), "version must not be empty");
    ensure!(
        p.sha256.len() == 64
            && p.sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "sha256 must be 64 lower-case hex digits"
    );
    match (&p.url, &p.path) {
        (Some(_), Some(_)) => bail!("give either url or path, not both"),
        (None, None) => bail!("url or path is required"),
        (Some(url), None) => ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "url {url:?} must be http(s)"
        ),
        (None, Some(path)) => ensure!(
            path.is_absolute(),
            "path {} must be absolute",
            path.display()
        ),
    }
    if let Some(name) = &p.name {
        ensure!(
            is_safe_name(name),
            "package name {name:?} must be [A-Za-z0-9.+_-]+"
        );
    }
    Ok(())
}

/// Names that end up in paths, unit names and argv: no separators, no
/// option-looking leading dash.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"
name = "tinyagent"
service = "tinyagent"
[[package]]
format = "deb"
arch = "amd64"
version = "1.0.0"
path = "/opt/nodeguard/packages/tinyagent_1.0.0_amd64.deb"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    #[test]
    fn parses_minimal_profile() {
        let p = Profile::parse(MINIMAL).expect("valid");
        assert_eq!(p.unit(), "tinyagent.service");
        assert_eq!(p.package_name(&p.packages[0]), "tinyagent");
    }

    #[test]
    fn rejects_unknown_keys() {
        let text = MINIMAL.replace("service =", "servce =");
        let err = Profile::parse(&text).expect_err("typo");
        assert!(format!("{err:#}").contains("servce"), "{err:#}");
    }

    #[test]
    fn rejects_missing_or_bad_sha256() {
        let no_sum = MINIMAL.replace(
            "sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
            "",
        );
        assert!(Profile::parse(&no_sum).is_err());
        let upper = MINIMAL.replace(
            "00000000000000000000000000000000000000000000000000000000000000",
            "ABCDEF0000000000000000000000000000000000000000000000000000000000",
        );
        assert!(Profile::parse(&upper).is_err());
    }

    #[test]
    fn rejects_url_and_path_together_and_relative_paths() {
        let both = MINIMAL.replace("path =", "url = \"https://x/a.deb\"\npath =");
        assert!(Profile::parse(&both).is_err());
        let rel = MINIMAL.replace("\"/opt/nodeguard", "\"opt/nodeguard");
        assert!(Profile::parse(&rel).is_err());
    }

    #[test]
    fn rejects_duplicate_format_arch() {
        let dup = format!(
            "{MINIMAL}{}",
            &MINIMAL[MINIMAL.find("[[package]]").expect("pkg")..]
        );
        let err = Profile::parse(&dup).expect_err("duplicate");
        assert!(format!("{err:#}").contains("two [[package]]"), "{err:#}");
    }

    #[test]
    fn rejects_world_readable_credential_file_and_unknown_template_keys() {
        let base = format!("{MINIMAL}\n[credentials]\nrequired = [\"token\"]\n");
        let open = format!("{base}[[config]]\npath = \"/etc/t.conf\"\nmode = \"0644\"\ntemplate = \"t={{{{token}}}}\"\n");
        assert!(Profile::parse(&open).is_err());
        let unknown =
            format!("{base}[[config]]\npath = \"/etc/t.conf\"\ntemplate = \"t={{{{nope}}}}\"\n");
        assert!(Profile::parse(&unknown).is_err());
        let ok =
            format!("{base}[[config]]\npath = \"/etc/t.conf\"\ntemplate = \"t={{{{token}}}}\"\n");
        assert_eq!(
            Profile::parse(&ok).expect("valid").configs[0].mode_bits(),
            0o600
        );
    }

    #[test]
    fn rejects_relative_host_commands() {
        let text = format!("{MINIMAL}\n[activate]\ncommand = [\"activate.sh\"]\n");
        assert!(Profile::parse(&text).is_err());
    }

    #[test]
    fn maps_machine_names() {
        assert_eq!(Arch::from_machine("x86_64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_machine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_machine("riscv64"), None);
    }
}
