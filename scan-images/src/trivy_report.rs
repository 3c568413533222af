//! Reading Trivy's JSON report (schema 2) and counting its findings.
//!
//! Only a small, stable subset is read; every field is optional and
//! unknown ones are ignored, because Trivy keeps adding fields (`ReportID`,
//! `ArtifactID`, `Fingerprint` all arrived in 0.68). `Results` is absent
//! when nothing was found, and `Vulnerabilities` is absent (not empty) for
//! a clean target. Findings are counted per package × CVE, like
//! trivy-operator: a CVE affecting `libssl` and `libcrypto` counts twice.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Trivy's severities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// CRITICAL
    Critical,
    /// HIGH
    High,
    /// MEDIUM
    Medium,
    /// LOW
    Low,
    /// UNKNOWN (also anything Trivy prints that we do not know)
    Unknown,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// The upper-case name Trivy uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Unknown => "UNKNOWN",
        }
    }

    /// Rank for `--fail-on`: higher is more severe (UNKNOWN lowest).
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 4,
            Severity::High => 3,
            Severity::Medium => 2,
            Severity::Low => 1,
            Severity::Unknown => 0,
        }
    }

    fn from_trivy(text: &str) -> Severity {
        text.parse().unwrap_or(Severity::Unknown)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let upper = s.trim().to_ascii_uppercase();
        match Severity::ALL.into_iter().find(|sev| sev.as_str() == upper) {
            Some(sev) => Ok(sev),
            None => {
                bail!("unknown severity {s:?} (expected CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN)")
            }
        }
    }
}

/// Finding counts by severity; serialises with all five upper-case keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// CRITICAL findings.
    #[serde(rename = "CRITICAL")]
    pub critical: u64,
    /// HIGH findings.
    #[serde(rename = "HIGH")]
    pub high: u64,
    /// MEDIUM findings.
    #[serde(rename = "MEDIUM")]
    pub medium: u64,
    /// LOW findings.
    #[serde(rename = "LOW")]
    pub low: u64,
    /// UNKNOWN findings.
    #[serde(rename = "UNKNOWN")]
    pub unknown: u64,
}

impl Counts {
    /// The count for one severity.
    pub fn get(&self, severity: Severity) -> u64 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Unknown => self.unknown,
        }
    }

    fn slot(&mut self, severity: Severity) -> &mut u64 {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Unknown => &mut self.unknown,
        }
    }

    /// Adds one finding.
    pub fn add(&mut self, severity: Severity) {
        *self.slot(severity) += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Counts) {
        for sev in Severity::ALL {
            *self.slot(sev) += other.get(sev);
        }
    }

    /// These counts with every severity outside `keep` zeroed.
    pub fn only(&self, keep: &[Severity]) -> Counts {
        let mut out = Counts::default();
        for sev in keep {
            *out.slot(*sev) = self.get(*sev);
        }
        out
    }

    /// Total findings.
    pub fn total(&self) -> u64 {
        Severity::ALL.iter().map(|s| self.get(*s)).sum()
    }

    /// True if any finding is at or above `threshold`.
    pub fn any_at_or_above(&self, threshold: Severity) -> bool {
        Severity::ALL
            .iter()
            .any(|s| s.rank() >= threshold.rank() && self.get(*s) > 0)
    }
}

/// The parts of a Trivy JSON report this tool reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrivyReport {
    /// 2 for every Trivy since 0.20.
    #[serde(default)]
    pub schema_version: Option<u32>,
    /// The argument Trivy was given.
    #[serde(default)]
    pub artifact_name: Option<String>,
    /// `container_image`, `filesystem`, …
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Image and OS facts.
    #[serde(default)]
    pub metadata: Option<ReportMetadata>,
    /// Absent when nothing was found.
    #[serde(default)]
    pub results: Option<Vec<TrivyResult>>,
}

/// `Metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportMetadata {
    /// Config digest (images only).
    #[serde(default, rename = "ImageID")]
    pub image_id: Option<String>,
    /// Detected OS.
    #[serde(default, rename = "OS")]
    pub os: Option<Os>,
}

/// `Metadata.OS`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Os {
    /// `debian`, `alpine`, `none`, …
    #[serde(default)]
    pub family: Option<String>,
    /// Version, e.g. `12.5`.
    #[serde(default)]
    pub name: Option<String>,
    /// End of service life (only present when true).
    #[serde(default, rename = "EOSL")]
    pub eosl: Option<bool>,
}

/// One `Results[]` element.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrivyResult {
    /// Free text; shown, never parsed.
    #[serde(default)]
    pub target: Option<String>,
    /// `os-pkgs`, `lang-pkgs`, …
    #[serde(default)]
    pub class: Option<String>,
    /// Absent (not empty) when the target is clean.
    #[serde(default)]
    pub vulnerabilities: Option<Vec<Vulnerability>>,
}

/// One finding.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vulnerability {
    /// `CVE-…`, `GHSA-…`, …
    #[serde(default, rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    /// Affected package.
    #[serde(default)]
    pub pkg_name: String,
    /// Installed version.
    #[serde(default)]
    pub installed_version: String,
    /// Absent when there is no fix.
    #[serde(default)]
    pub fixed_version: Option<String>,
    /// Upper-case severity.
    #[serde(default)]
    pub severity: String,
    /// `fixed`, `affected`, `will_not_fix`, …
    #[serde(default)]
    pub status: Option<String>,
}

impl TrivyReport {
    /// Every finding, in report order.
    pub fn vulnerabilities(&self) -> impl Iterator<Item = &Vulnerability> {
        self.results
            .iter()
            .flatten()
            .flat_map(|r| r.vulnerabilities.iter().flatten())
    }

    /// Findings per severity (package × CVE).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for v in self.vulnerabilities() {
            counts.add(Severity::from_trivy(&v.severity));
        }
        counts
    }

    /// Distinct vulnerability IDs.
    pub fn unique_ids(&self) -> usize {
        let mut ids: Vec<&str> = self
            .vulnerabilities()
            .map(|v| v.vulnerability_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// The detected OS, if any.
    pub fn os(&self) -> Option<&Os> {
        self.metadata.as_ref().and_then(|m| m.os.as_ref())
    }
}

/// Parses a Trivy JSON report; an error says what was wrong with it.
pub fn parse(json: &[u8]) -> Result<TrivyReport> {
    let report: TrivyReport = serde_json::from_slice(json)
        .context("Trivy's report is not valid JSON of the expected shape")?;
    match report.schema_version {
        Some(2) => Ok(report),
        Some(other) => bail!("Trivy report has SchemaVersion {other}; only 2 is understood"),
        None => bail!("Trivy report has no SchemaVersion; is this a Trivy JSON report?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> TrivyReport {
        let path = format!(
            "{}/../../shared/fixtures/trivy/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let path = std::env::var("NODEGUARD_SHARED_FIXTURES")
            .map(|d| format!("{d}/trivy/{name}.json"))
            .unwrap_or(path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse(&bytes).unwrap_or_else(|e| panic!("{path}: {e:#}"))
    }

    fn counts(c: u64, h: u64, m: u64, l: u64, u: u64) -> Counts {
        Counts {
            critical: c,
            high: h,
            medium: m,
            low: l,
            unknown: u,
        }
    }

    #[test]
    fn alpine_counts_the_same_cve_once_per_package() {
        let r = shared("alpine-310");
        assert_eq!(r.counts(), counts(0, 0, 4, 0, 0));
        assert!(
            r.unique_ids() < 4,
            "CVE-2019-1549 hits libcrypto1.1 and libssl1.1"
        );
        let os = r.os().unwrap();
        assert_eq!(os.family.as_deref(), Some("alpine"));
        assert_eq!(os.eosl, Some(true));
    }

    #[test]
    fn debian_finding_without_fixed_version_is_counted() {
        let r = shared("debian-buster");
        assert_eq!(r.counts(), counts(1, 0, 0, 1, 0));
        let unfixed: Vec<_> = r
            .vulnerabilities()
            .filter(|v| v.fixed_version.is_none())
            .collect();
        assert_eq!(unfixed.len(), 1);
        assert_eq!(unfixed[0].severity, "LOW");
        assert_eq!(unfixed[0].status.as_deref(), Some("affected"));
    }

    #[test]
    fn centos_will_not_fix_and_epoch_versions() {
        let r = shared("centos-7");
        assert_eq!(r.counts(), counts(0, 0, 1, 2, 0));
        assert!(r
            .vulnerabilities()
            .any(|v| v.status.as_deref() == Some("will_not_fix")));
        assert!(r
            .vulnerabilities()
            .any(|v| v.installed_version.starts_with("1:")));
    }

    #[test]
    fn clean_image_without_vulnerabilities_key() {
        let r = shared("sl-micro-rancher5.4");
        assert!(r.results.as_ref().is_some_and(|rs| !rs.is_empty()));
        assert_eq!(r.counts(), Counts::default());
    }

    #[test]
    fn report_without_results_key() {
        let r = shared("alpine-39-skip");
        assert!(r.results.is_none());
        assert_eq!(r.counts().total(), 0);
        assert_eq!(r.os().unwrap().family.as_deref(), Some("none"));
    }

    #[test]
    fn os_and_language_packages_both_count() {
        let r = shared("fluentd-gems");
        assert_eq!(r.counts(), counts(1, 1, 0, 0, 0));
        let classes: Vec<_> = r
            .results
            .iter()
            .flatten()
            .filter_map(|x| x.class.clone())
            .collect();
        assert!(classes.contains(&"lang-pkgs".to_string()), "{classes:?}");
    }

    #[test]
    fn every_shared_fixture_parses() {
        let dir = std::env::var("NODEGUARD_SHARED_FIXTURES")
            .map(|d| format!("{d}/trivy"))
            .unwrap_or_else(|_| {
                format!("{}/../../shared/fixtures/trivy", env!("CARGO_MANIFEST_DIR"))
            });
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).unwrap();
                parse(&bytes).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 6, "only {seen} fixtures in {dir}");
    }

    #[test]
    fn bad_reports_are_errors() {
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"SchemaVersion":1}"#).is_err());
        assert!(parse(br#"{"Results":[]}"#).is_err());
        assert!(parse(br#"{"SchemaVersion":2,"Results":"x"}"#).is_err());
        assert!(parse(br#"{"SchemaVersion":2}"#).is_ok());
    }

    #[test]
    fn unknown_severity_strings_count_as_unknown() {
        let r = parse(
            br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[
                {"VulnerabilityID":"X","Severity":"WEIRD"},{"VulnerabilityID":"Y","Severity":"high"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.counts(), counts(0, 1, 0, 0, 1));
    }

    #[test]
    fn severities_parse_any_case_and_threshold() {
        assert_eq!("critical".parse::<Severity>().unwrap(), Severity::Critical);
        assert!("urgent".parse::<Severity>().is_err());
        let c = counts(0, 0, 1, 0, 0);
        assert!(c.any_at_or_above(Severity::Medium));
        assert!(c.any_at_or_above(Severity::Low));
        assert!(!c.any_at_or_above(Severity::High));
        assert_eq!(c.only(&[Severity::High]), Counts::default());
        assert_eq!(c.only(&[Severity::Medium]), c);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["MEDIUM"], 1);
        assert_eq!(json["UNKNOWN"], 0);
    }
}
