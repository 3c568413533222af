//! The embedded check definitions (`checks/cis-1.12.toml`) and their schema.
//!
//! Checks are data: each names a typed audit (file mode, file owner or
//! setting tests) that `audit.rs` evaluates against gathered facts. The
//! definitions are validated once at start-up (and by a unit test), so a
//! typo in an operator or a default shows up as an error, not a wrong verdict.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::compare::Op;
use crate::value::{Value, ValueType};

/// The benchmark shipped in the binary.
pub const CIS_1_12: &str = include_str!("../checks/cis-1.12.toml");

/// A whole benchmark file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    /// e.g. `cis-1.12`.
    pub benchmark: String,
    /// Kubernetes minor versions the benchmark is written for.
    pub kubernetes: String,
    #[serde(rename = "section")]
    pub sections: Vec<Section>,
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
    #[serde(rename = "default", default)]
    pub defaults: Vec<Default>,
}

/// A numbered section (`4`) with its groups (`4.1`, `4.2`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub target: Target,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    pub title: String,
}

/// Which kind of node a section applies to (kube-bench's `node_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Master,
    Etcd,
    Node,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Master => "master",
            Target::Etcd => "etcd",
            Target::Node => "node",
        }
    }

    pub fn parse(s: &str) -> Result<Target> {
        Ok(match s.trim() {
            "master" | "controlplane" | "control-plane" => Target::Master,
            "etcd" => Target::Etcd,
            "node" | "worker" => Target::Node,
            other => bail!("unknown target '{other}' (expected node, master or etcd)"),
        })
    }
}

/// One CIS recommendation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub id: String,
    pub title: String,
    /// "(Automated)" in the benchmark: failures count as FAIL, not WARN.
    pub automated: bool,
    pub remediation: String,
    pub audit: Audit,
}

impl Check {
    /// The group id: `4.2.1` → `4.2`; a two-part id (`2.1`) → its section.
    pub fn group_id(&self) -> &str {
        let parts = self.id.matches('.').count();
        if parts >= 2 {
            self.id.rsplit_once('.').map_or(&self.id, |(g, _)| g)
        } else {
            self.section_id()
        }
    }

    pub fn section_id(&self) -> &str {
        self.id.split('.').next().unwrap_or(&self.id)
    }
}

/// How a check is decided.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Audit {
    /// Every file of the role has no permission bit outside `max` (octal).
    FileMode { file: FileRole, max: String },
    /// Every file of the role is owned by `owner` (`user:group`).
    FileOwner { file: FileRole, owner: String },
    /// Setting tests on a component, combined with `all` (and) or `any` (or).
    Setting {
        component: Component,
        #[serde(default)]
        combine: Combine,
        #[serde(rename = "test")]
        tests: Vec<SettingTest>,
    },
    /// Needs a human (e.g. "etcd uses a CA of its own"): always WARN.
    Manual { note: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    All,
    Any,
}

/// Files whose location is resolved from the running components and the
/// node's layout, never from a fixed list alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    KubeletUnit,
    KubeletKubeconfig,
    KubeletConfig,
    KubeletClientCa,
    ProxyKubeconfig,
    ApiserverManifest,
    ControllerManagerManifest,
    SchedulerManifest,
    EtcdManifest,
    CniConfig,
    EtcdDataDir,
    AdminKubeconfig,
    SchedulerKubeconfig,
    ControllerManagerKubeconfig,
    PkiTree,
    PkiCerts,
    PkiKeys,
}

/// The processes whose settings checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Kubelet,
    KubeProxy,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Etcd,
}

impl Component {
    pub const ALL: [Component; 6] = [
        Component::Kubelet,
        Component::KubeProxy,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Etcd,
    ];

    /// Part of the control plane (sections 1 and 2).
    pub fn is_control_plane(self) -> bool {
        !matches!(self, Component::Kubelet | Component::KubeProxy)
    }

    /// The executable name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Etcd => "etcd",
        }
    }
}

/// One test of a setting audit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingTest {
    /// Command-line flag without dashes, e.g. `anonymous-auth`.
    pub flag: Option<String>,
    /// Dotted key in the component's config file, e.g.
    /// `authentication.anonymous.enabled`.
    pub config: Option<String>,
    /// For map settings (feature gates): the key inside the map; `type` is
    /// then the type of that entry.
    pub key: Option<String>,
    #[serde(rename = "type")]
    pub ty: ValueType,
    pub op: Op,
    pub value: Option<toml::Value>,
}

impl SettingTest {
    /// The name shown in `expected`/`actual`: the config key when the
    /// component reads a config file, else the flag.
    pub fn display_name(&self) -> String {
        let base = match (&self.config, &self.flag) {
            (Some(c), Some(f)) => format!("--{f} / {c}"),
            (Some(c), None) => c.clone(),
            (None, Some(f)) => format!("--{f}"),
            (None, None) => "?".to_string(),
        };
        match &self.key {
            Some(k) => format!("{base}[{k}]"),
            None => base,
        }
    }

    /// The operand, typed like the setting (for a `key` test, like the map
    /// entry). `has`/`nothave` on a list and `regex` take a string.
    pub fn operand(&self) -> Result<Option<Value>, String> {
        let Some(v) = &self.value else {
            return Ok(None);
        };
        let ty = match (self.ty, self.op) {
            (_, Op::Regex) | (ValueType::List | ValueType::Map, Op::Has | Op::Nothave) => {
                ValueType::String
            }
            (ty, _) => ty,
        };
        ty.from_toml(v).map(Some)
    }
}

/// A component's built-in value for a setting absent from flags and config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Default {
    pub component: Component,
    /// Config key (kubelet, kube-proxy) or flag name (others) it applies to.
    pub setting: String,
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// Value when the component runs with a config file (`--config`).
    pub config_file: Option<toml::Value>,
    /// Value of the command-line flag, used when there is no config file.
    pub flag: Option<toml::Value>,
    /// First Kubernetes minor version (`1.27`) with this default.
    pub since: Option<String>,
    /// Last minor version with this default.
    pub until: Option<String>,
    /// A zero value in the config file (`0s`) is replaced by the default,
    /// as Go defaulting does for non-pointer fields.
    #[serde(default)]
    pub zero_means_default: bool,
    /// Where the default is documented.
    pub doc: String,
}

impl Benchmark {
    /// Parses and validates the embedded benchmark.
    pub fn embedded() -> Result<Benchmark> {
        Benchmark::parse(CIS_1_12).context("embedded check definitions are invalid")
    }

    pub fn parse(text: &str) -> Result<Benchmark> {
        let bench: Benchmark = toml::from_str(text)?;
        bench.validate()?;
        Ok(bench)
    }

    pub fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for check in &self.checks {
            if !seen.insert(check.id.as_str()) {
                bail!("check {} is defined twice", check.id);
            }
            let section = self.section(check.section_id()).with_context(|| {
                format!("check {}: no section {}", check.id, check.section_id())
            })?;
            if !section.groups.iter().any(|g| g.id == check.group_id()) {
                bail!("check {}: no group {}", check.id, check.group_id());
            }
            if let Audit::FileMode { max, .. } = &check.audit {
                u32::from_str_radix(max, 8)
                    .with_context(|| format!("check {}: mask '{max}' is not octal", check.id))?;
            }
            if let Audit::Setting { tests, .. } = &check.audit {
                for test in tests {
                    if test.flag.is_none() && test.config.is_none() {
                        bail!("check {}: a test names neither flag nor config", check.id);
                    }
                    let operand = test
                        .operand()
                        .map_err(|e| anyhow::anyhow!("check {}: {e}", check.id))?;
                    if test.op.needs_operand() != operand.is_some() {
                        bail!(
                            "check {}: operator {:?} and value disagree",
                            check.id,
                            test.op
                        );
                    }
                }
            }
        }
        for d in &self.defaults {
            for v in [&d.config_file, &d.flag].into_iter().flatten() {
                d.ty.from_toml(v).map_err(|e| {
                    anyhow::anyhow!("default {} {}: {e}", d.component.name(), d.setting)
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_definitions_are_valid() {
        let bench = Benchmark::embedded().expect("valid");
        assert_eq!(bench.benchmark, "cis-1.12");
        let node: Vec<_> = bench
            .checks
            .iter()
            .filter(|c| c.section_id() == "4")
            .collect();
        assert_eq!(node.len(), 25, "CIS 1.12 has 25 worker node checks");
        assert_eq!(node.iter().filter(|c| c.automated).count(), 12);
    }

    #[test]
    fn group_ids() {
        let bench = Benchmark::embedded().expect("valid");
        let ids: Vec<(&str, &str)> = bench
            .checks
            .iter()
            .map(|c| (c.id.as_str(), c.group_id()))
            .collect();
        assert!(ids.contains(&("4.2.10", "4.2")));
        assert!(ids.contains(&("2.1", "2")) || !bench.sections.iter().any(|s| s.id == "2"));
    }

    #[test]
    fn rejects_bad_definitions() {
        let text = r#"
benchmark = "x"
kubernetes = "1.32"
[[section]]
id = "4"
title = "t"
target = "node"
group = [{ id = "4.1", title = "g" }]
[[check]]
id = "4.1.1"
title = "t"
automated = true
remediation = "r"
audit = { kind = "file_mode", file = "kubelet_unit", max = "9z" }
"#;
        let err = Benchmark::parse(text).expect_err("bad mask");
        assert!(format!("{err:#}").contains("not octal"), "{err:#}");
    }
}
