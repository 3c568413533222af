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
    /// How to tell the agent registered with its platform (apart from
    /// installed, active and activated).
    #[serde(default)]
    pub registered: Option<Registered>,
    /// What uninstall removes besides the package and config files.
    #[serde(default)]
    pub uninstall: UninstallSpec,
    /// Where the package list came from: `None` for the profile itself,
    /// the file for `--packages-file`.
    #[serde(skip)]
    pub packages_file: Option<PathBuf>,
}

/// The registration check: a host file the agent writes once its platform
/// knows it (Qualys: `/etc/qualys/hostid`), present and non-empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// Absolute host path.
    pub file: PathBuf,
    /// A substring the file must contain.
    #[serde(default)]
    pub contains: Option<String>,
}

/// The `--packages-file` layout: `[[package]]` entries only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesFile {
    #[serde(default, rename = "package")]
    packages: Vec<PackageEntry>,
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
    /// Other file names accepted for a credential, e.g.
    /// `activation_id = ["ACTIVATION_ID"]` (a Secret made for another
    /// chart). Giving both spellings is an error naming both.
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, Vec<String>>,
    /// Credentials whose value may span lines (a PEM bundle); every other
    /// value is refused if it holds a newline or another control character.
    /// A multi-line credential may only be used in config templates.
    #[serde(default)]
    pub multiline: Vec<String>,
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
        let text = read_capped(path, "profile")?;
        Self::parse(&text).with_context(|| format!("invalid profile {}", path.display()))
    }

    /// Parse and validate profile text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut profile: Profile = toml::from_str(text).map_err(|e| one_line(text, &e))?;
        profile.validate()?;
        Ok(profile)
    }

    /// Replace the package list with the `[[package]]` entries of a
    /// `--packages-file` (the chart's `bootstrap.packages`), validated like
    /// the profile's own.
    pub fn use_packages_file(&mut self, path: &Path) -> Result<()> {
        let text = read_capped(path, "packages file")?;
        let file: PackagesFile = toml::from_str(&text)
            .map_err(|e| one_line(&text, &e))
            .with_context(|| format!("invalid packages file {}", path.display()))?;
        ensure!(
            !file.packages.is_empty(),
            "packages file {} has no [[package]] entry",
            path.display()
        );
        let mut packages = file.packages;
        validate_packages(&mut packages)
            .with_context(|| format!("invalid packages file {}", path.display()))?;
        self.packages = packages;
        self.packages_file = Some(path.to_owned());
        Ok(())
    }

    /// Every accepted file name of a credential: its own, then its aliases.
    pub fn credential_spellings<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        std::iter::once(name).chain(
            self.credentials
                .aliases
                .get(name)
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
    }

    /// Whether a credential may hold newlines.
    pub fn is_multiline(&self, name: &str) -> bool {
        self.credentials.multiline.iter().any(|m| m == name)
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

    fn validate(&mut self) -> Result<()> {
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
        if let Some(name) = &self.package_name {
            ensure!(
                is_safe_name(name),
                "package_name {name:?} must be [A-Za-z0-9.+_@-]+ and not start with - or ."
            );
        }
        validate_packages(&mut self.packages)?;
        self.validate_credentials()?;
        for (key, value) in &self.values {
            ensure!(
                !value.chars().any(char::is_control),
                "[values] {key} holds a control character (a newline would add lines to a rendered file)"
            );
        }
        for cfg in &mut self.configs {
            cfg.path = host_path(&cfg.path)
                .with_context(|| format!("[[config]] {}", cfg.path.display()))?;
        }
        for cfg in &self.configs {
            self.validate_config(cfg)?;
        }
        if let Some(v) = &mut self.verify {
            if let Some(file) = &mut v.file {
                *file = host_path(file).context("[verify] file")?;
            }
        }
        if let Some(r) = &mut self.registered {
            r.file = host_path(&r.file).context("[registered] file")?;
        }
        for p in self
            .uninstall
            .remove
            .iter_mut()
            .chain(&mut self.uninstall.purge)
        {
            let normal = host_path(p).context("[uninstall]")?;
            // Removing a top-level directory (/etc, /usr, /var) is never
            // what an agent's uninstall means.
            ensure!(
                normal.components().count() >= 3,
                "[uninstall] path {} (normalised: {}) is a top-level directory; refusing to remove it",
                p.display(),
                normal.display()
            );
            *p = normal;
        }
        self.validate_steps()
    }

    fn validate_credentials(&self) -> Result<()> {
        let mut seen: Vec<&str> = Vec::new();
        for name in self.credential_names() {
            ensure!(
                is_safe_name(name),
                "credential name {name:?} must be [A-Za-z0-9._-]+"
            );
        }
        for (name, aliases) in &self.credentials.aliases {
            ensure!(
                self.credential_names().any(|c| c == name),
                "[credentials.aliases] {name:?} is not a required or optional credential"
            );
            for alias in aliases {
                ensure!(
                    is_safe_name(alias),
                    "credential alias {alias:?} must be [A-Za-z0-9._-]+"
                );
            }
        }
        for name in self.credential_names() {
            for spelling in self.credential_spellings(name) {
                ensure!(
                    !seen.contains(&spelling),
                    "credential file name {spelling:?} is used twice (as a name or alias)"
                );
                seen.push(spelling);
            }
        }
        for name in &self.credentials.multiline {
            ensure!(
                self.credential_names().any(|c| c == name),
                "[credentials] multiline {name:?} is not a required or optional credential"
            );
        }
        Ok(())
    }

    /// Whether a template key names a credential or a profile value.
    fn knows(&self, key: &str) -> bool {
        self.credential_names().any(|c| c == key) || self.values.contains_key(key)
    }

    fn validate_config(&self, cfg: &ConfigFile) -> Result<()> {
        let known = |key: &str| self.knows(key);
        let ctx = || format!("[[config]] {}", cfg.path.display());
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
                    ensure!(
                        !self.is_multiline(key),
                        "command {:?} uses multi-line credential {key:?}; only config files may",
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
        Ok(())
    }

    fn references_credential(&self, template: &str) -> bool {
        Template::parse(template)
            .map(|t| t.keys().any(|k| self.credential_names().any(|c| c == k)))
            .unwrap_or(true)
    }
}

/// Validate a package list (the profile's or a `--packages-file`'s):
/// each entry, no two for one format/architecture; image paths normalised.
fn validate_packages(packages: &mut [PackageEntry]) -> Result<()> {
    ensure!(!packages.is_empty(), "at least one [[package]] is required");
    for i in 0..packages.len() {
        let ctx = || format!("[[package]] #{}", i + 1);
        if let Some(path) = &packages[i].path {
            let normal = normalise(path).with_context(ctx)?;
            packages[i].path = Some(normal);
        }
        let p = &packages[i];
        validate_package(p).with_context(ctx)?;
        let dup = packages[..i]
            .iter()
            .any(|q| q.format == p.format && q.arch == p.arch);
        ensure!(!dup, "two [[package]] entries for {}/{}", p.format, p.arch);
    }
    Ok(())
}

/// The placeholder sum shipped profiles carry until someone pins theirs.
pub const PLACEHOLDER_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

impl PackageEntry {
    /// Whether the sha256 is the all-zero placeholder.
    pub fn sha256_is_placeholder(&self) -> bool {
        self.sha256 == PLACEHOLDER_SHA256
    }
}

fn validate_package(p: &PackageEntry) -> Result<()> {
    ensure!(!p.version.trim().is_empty(), "version must not be empty");
    ensure!(
        !p.version.starts_with(['-', '.'])
            && p.version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+~:_-".contains(&b)),
        "version {:?} must be [A-Za-z0-9.+~:_-]+ and not start with - or .",
        p.version
    );
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
            path.is_absolute() && path != Path::new("/"),
            "path {} must be an absolute file path",
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

/// Read a small operator-provided file: a regular file, size-capped.
fn read_capped(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    ensure!(
        meta.is_file(),
        "{what} {} is not a regular file",
        path.display()
    );
    let mut text = String::new();
    file.take(MAX_PROFILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    ensure!(
        text.len() as u64 <= MAX_PROFILE_BYTES,
        "{what} {} is larger than {MAX_PROFILE_BYTES} bytes",
        path.display()
    );
    Ok(text)
}

/// A TOML error as one line (the parser's message spans several, with a
/// source snippet); line and column stay.
fn one_line(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            anyhow::anyhow!("line {line}, column {column}: {message}")
        }
        None => anyhow::anyhow!("{message}"),
    }
}

/// Normalise an absolute path lexically (`.` dropped, `..` applied);
/// an error when it is relative or climbs above `/`.
pub fn normalise(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    ensure!(
        path.is_absolute(),
        "path {} must be absolute",
        path.display()
    );
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                ensure!(out.pop(), "path {} climbs above /", path.display());
            }
            Component::Prefix(_) => bail!("path {} is not a Unix path", path.display()),
        }
    }
    Ok(out)
}

/// A host path from a profile: absolute, normalised, not `/` itself.
pub fn host_path(path: &Path) -> Result<PathBuf> {
    let normal = normalise(path)?;
    ensure!(
        normal != Path::new("/"),
        "path {} resolves to / (normalised); refusing it",
        path.display()
    );
    Ok(normal)
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
    fn top_level_package_name_is_validated_like_per_package_names() {
        for bad in [
            "../../../tmp/x",
            "-oAPT::Get::Purge=x",
            ".hidden",
            "a b",
            "",
        ] {
            let text = MINIMAL.replace(
                "service = \"tinyagent\"",
                &format!("service = \"tinyagent\"\npackage_name = {bad:?}"),
            );
            let err = Profile::parse(&text).expect_err(bad);
            assert!(
                format!("{err:#}").contains("package_name"),
                "{bad}: {err:#}"
            );
        }
        let bad_version = MINIMAL.replace("version = \"1.0.0\"", "version = \"-1/../x\"");
        assert!(Profile::parse(&bad_version).is_err());
    }

    #[test]
    fn paths_are_checked_after_normalisation() {
        for bad in [
            "/etc/..",
            "/etc/../..",
            "/",
            "/./",
            "/etc",
            "relative/x",
            "/var/.",
        ] {
            let text = format!("{MINIMAL}\n[uninstall]\nremove = [{bad:?}]\n");
            let err = Profile::parse(&text).expect_err(bad);
            assert!(format!("{err:#}").contains("[uninstall]"), "{bad}: {err:#}");
        }
        let text = format!("{MINIMAL}\n[uninstall]\npurge = [\"/etc/qualys/../qualys/./x\"]\n");
        let p = Profile::parse(&text).expect("normalises");
        assert_eq!(p.uninstall.purge, [PathBuf::from("/etc/qualys/x")]);
        let cfg = format!("{MINIMAL}\n[[config]]\npath = \"/etc/../\"\ntemplate = \"x\"\n");
        assert!(Profile::parse(&cfg).is_err());
        let cfg = format!("{MINIMAL}\n[[config]]\npath = \"/etc/a/../../..\"\ntemplate = \"x\"\n");
        assert!(format!("{:#}", Profile::parse(&cfg).expect_err("above /")).contains("climbs"));
        let reg = format!("{MINIMAL}\n[registered]\nfile = \"/etc/..\"\n");
        assert!(Profile::parse(&reg).is_err());
        let pkg = MINIMAL.replace("/opt/nodeguard/packages/", "/opt/../../");
        assert!(Profile::parse(&pkg).is_err());
    }

    #[test]
    fn registered_and_aliases_parse() {
        let text = format!(
            "{MINIMAL}\n[credentials]\nrequired = [\"activation_id\"]\n[credentials.aliases]\nactivation_id = [\"ACTIVATION_ID\"]\n[registered]\nfile = \"/etc/qualys/hostid\"\n"
        );
        let p = Profile::parse(&text).expect("valid");
        assert_eq!(
            p.credential_spellings("activation_id").collect::<Vec<_>>(),
            ["activation_id", "ACTIVATION_ID"]
        );
        assert_eq!(
            p.registered.as_ref().map(|r| r.file.clone()),
            Some(PathBuf::from("/etc/qualys/hostid"))
        );
        let unknown = text.replace("activation_id = [", "nope = [");
        assert!(Profile::parse(&unknown).is_err());
        let clash = text.replace("[\"ACTIVATION_ID\"]", "[\"activation_id\"]");
        assert!(Profile::parse(&clash).is_err());
    }

    #[test]
    fn a_packages_file_replaces_the_list_and_is_validated() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = Profile::parse(MINIMAL).expect("valid");
        let file = dir.path().join("packages.toml");
        std::fs::write(
            &file,
            "[[package]]\nformat = \"rpm\"\narch = \"arm64\"\nversion = \"2.0\"\nurl = \"https://m/a.rpm\"\nsha256 = \"2222222222222222222222222222222222222222222222222222222222222222\"\n",
        )
        .expect("write");
        p.use_packages_file(&file).expect("valid file");
        assert_eq!(p.packages.len(), 1);
        assert_eq!(p.packages[0].arch, Arch::Arm64);
        assert_eq!(p.packages_file.as_deref(), Some(file.as_path()));
        std::fs::write(&file, "[[package]]\nformat = \"deb\"\n").expect("write");
        let err = p.use_packages_file(&file).expect_err("incomplete");
        assert!(format!("{err:#}").contains("packages.toml"), "{err:#}");
        assert!(!format!("{err:#}").contains('\n'), "one line: {err:#}");
        std::fs::write(&file, "").expect("write");
        assert!(p.use_packages_file(&file).is_err());
        assert!(p.use_packages_file(dir.path()).is_err(), "a directory");
    }

    #[test]
    fn a_profile_value_with_a_newline_is_refused() {
        let text = format!("{MINIMAL}\n[values]\nserver = \"https://a\\nevil=1\"\n");
        let err = Profile::parse(&text).expect_err("newline");
        assert!(format!("{err:#}").contains("[values] server"), "{err:#}");
    }

    #[test]
    fn placeholder_sum_is_recognised() {
        let p = Profile::parse(MINIMAL).expect("valid");
        assert!(p.packages[0].sha256_is_placeholder());
    }

    #[test]
    fn maps_machine_names() {
        assert_eq!(Arch::from_machine("x86_64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_machine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_machine("riscv64"), None);
    }
}
