//! Judging checks against facts: pure functions, no I/O.

use serde::Serialize;

use crate::definitions::{Audit, Benchmark, Check, Combine, Component, SettingTest};
use crate::facts::{ComponentFacts, ConfigState, Facts};
use crate::files::{FileSet, FileStat, Source};
use crate::value::{Value, ValueType};
use crate::version::{parse_minor, KubeVersion};

/// kube-bench's four states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Info,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Pass, Status::Fail, Status::Warn, Status::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Info => "INFO",
        }
    }
}

/// Why a check has the status it has, when PASS/FAIL alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The node has no such file or component (kube-bench would FAIL).
    NotApplicable,
    /// The facts could not be read (malformed config, bad link, bad value).
    Error,
    /// The check needs a human.
    Manual,
    /// A failed check the benchmark marks Manual: WARN, not FAIL.
    ManualFailed,
    /// Deselected with `--skip`.
    Skipped,
    /// The component runs, but its settings cannot be seen from the node
    /// (k3s' embedded control plane): WARN, for a human to review.
    Unobservable,
}

/// The verdict on one check.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub expected: String,
    /// The observed values only; never a whole file.
    pub actual: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Which flag, file or default decided, e.g. `/var/lib/kubelet/config.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

enum Verdict {
    Pass,
    Fail,
    NotApplicable(String),
    /// The component runs but its settings cannot be read.
    Unobservable(String),
    Error(String),
}

impl Verdict {
    /// kube-bench's mapping: a failure of a Manual check is WARN, and so is
    /// an error on one; not applicable is INFO.
    fn status(self, automated: bool) -> (Status, Option<Reason>, Option<String>) {
        let fail = if automated {
            Status::Fail
        } else {
            Status::Warn
        };
        match self {
            Verdict::Pass => (Status::Pass, None, None),
            Verdict::Fail if automated => (Status::Fail, None, None),
            Verdict::Fail => (Status::Warn, Some(Reason::ManualFailed), None),
            Verdict::NotApplicable(why) => (Status::Info, Some(Reason::NotApplicable), Some(why)),
            Verdict::Unobservable(why) => (Status::Warn, Some(Reason::Unobservable), Some(why)),
            Verdict::Error(why) => (fail, Some(Reason::Error), Some(why)),
        }
    }
}

struct Judged {
    verdict: Verdict,
    expected: String,
    actual: String,
    source: Option<Source>,
    source_detail: Option<String>,
}

/// Judges one check.
pub fn evaluate(check: &Check, bench: &Benchmark, facts: &Facts) -> Outcome {
    let judged = match &check.audit {
        Audit::FileMode { file, max } => {
            let mask = u32::from_str_radix(max, 8).unwrap_or(0);
            judge_files(
                facts.files.get(file),
                &format!("permissions {max} or more restrictive"),
                |stat| {
                    (
                        stat.mode & !mask == 0,
                        format!("permissions={:o}", stat.mode),
                    )
                },
            )
        }
        Audit::FileOwner { file, owner } => {
            let (want_user, want_group) = owner.split_once(':').unwrap_or((owner, owner));
            judge_files(facts.files.get(file), &format!("owner {owner}"), |stat| {
                let user = facts.accounts.user_name(stat.uid);
                let group = facts.accounts.group_name(stat.gid);
                (
                    user == want_user && group == want_group,
                    format!("{user}:{group}"),
                )
            })
        }
        Audit::Setting {
            component,
            combine,
            tests,
        } => judge_setting(*component, *combine, tests, bench, facts),
        Audit::Manual { note } => {
            return Outcome {
                status: Status::Warn,
                expected: "manual review".into(),
                actual: String::new(),
                source: None,
                source_detail: None,
                reason: Some(Reason::Manual),
                detail: Some(note.clone()),
            }
        }
    };
    let (status, reason, detail) = judged.verdict.status(check.automated);
    Outcome {
        status,
        expected: judged.expected,
        actual: judged.actual,
        source: judged.source,
        source_detail: judged.source_detail,
        reason,
        detail,
    }
}

fn judge_files(
    set: Option<&FileSet>,
    expected: &str,
    test: impl Fn(&FileStat) -> (bool, String),
) -> Judged {
    let mut judged = Judged {
        verdict: Verdict::Pass,
        expected: expected.to_string(),
        actual: String::new(),
        source: None,
        source_detail: None,
    };
    match set {
        None => judged.verdict = Verdict::Error("file role was not gathered".into()),
        Some(FileSet::Absent(why)) => judged.verdict = Verdict::NotApplicable(why.clone()),
        Some(FileSet::Error(why)) => judged.verdict = Verdict::Error(why.clone()),
        Some(FileSet::Files {
            files,
            source,
            detail,
        }) => {
            judged.source = Some(*source);
            judged.source_detail = Some(detail.clone());
            let mut failing = Vec::new();
            let mut passing = Vec::new();
            let mut errors = Vec::new();
            for f in files {
                match &f.stat {
                    Ok(stat) => {
                        let (ok, shown) = test(stat);
                        let part = format!("{} {shown}", f.path);
                        if ok {
                            passing.push(part);
                        } else {
                            failing.push(part);
                        }
                    }
                    Err(e) => errors.push(e.clone()),
                }
            }
            let all_ok = failing.is_empty();
            // Offending files first; a PKI or CNI directory can hold many
            // files, and a JSON Lines record must stay small.
            failing.extend(passing);
            judged.actual = cap_list(&failing, MAX_FILES_SHOWN);
            judged.verdict = if !errors.is_empty() {
                Verdict::Error(errors.join("; "))
            } else if all_ok {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
        }
    }
    judged
}

/// How many files `actual` lists before summarising the rest.
const MAX_FILES_SHOWN: usize = 16;

fn cap_list(parts: &[String], max: usize) -> String {
    if parts.len() <= max {
        return parts.join("; ");
    }
    format!(
        "{}; … and {} more",
        parts[..max].join("; "),
        parts.len() - max
    )
}

/// A setting's effective value and what decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub value: Option<Value>,
    pub source: Option<Source>,
    pub detail: Option<String>,
    /// With the version unknown and a default that changed between
    /// releases: every candidate default (`value` is then `None`).
    pub candidates: Vec<Value>,
}

fn judge_setting(
    component: Component,
    combine: Combine,
    tests: &[SettingTest],
    bench: &Benchmark,
    facts: &Facts,
) -> Judged {
    let comp = facts.components.get(&component);
    // Name settings the way this node configures them: config keys when
    // the component reads a config file, flags otherwise.
    let uses_config = comp.is_some_and(|c| !matches!(c.config, ConfigState::NotUsed));
    let mut judged = Judged {
        verdict: Verdict::Pass,
        expected: expectation_text(tests, combine, uses_config),
        actual: String::new(),
        source: None,
        source_detail: None,
    };
    let Some(comp) = comp else {
        judged.verdict = absent_component(component, facts);
        return judged;
    };
    let mut results = Vec::new();
    let mut actual = Vec::new();
    for test in tests {
        let (ok, resolved) = match judge_test(component, comp, test, bench, facts) {
            Ok(judged_test) => judged_test,
            Err(verdict) => {
                judged.verdict = verdict;
                return judged;
            }
        };
        actual.push(format!(
            "{}={}",
            short_name(test, uses_config),
            shown_value(&resolved)
        ));
        if judged.source.is_none() || !ok {
            judged.source = resolved.source;
            judged.source_detail = resolved.detail.clone();
        }
        results.push(ok);
    }
    judged.actual = actual.join("; ");
    let pass = match combine {
        Combine::All => results.iter().all(|r| *r),
        Combine::Any => results.iter().any(|r| *r),
    };
    judged.verdict = if pass { Verdict::Pass } else { Verdict::Fail };
    judged
}

/// What the check expects, every test joined by AND or OR.
fn expectation_text(tests: &[SettingTest], combine: Combine, uses_config: bool) -> String {
    let joiner = if combine == Combine::All {
        " AND "
    } else {
        " OR "
    };
    tests
        .iter()
        .map(|t| describe_expectation(t, uses_config))
        .collect::<Vec<_>>()
        .join(joiner)
}

/// The verdict for a component that was not found: unobservable (it runs,
/// but cannot be read) or not applicable.
fn absent_component(component: Component, facts: &Facts) -> Verdict {
    match facts.unobservable.get(&component) {
        Some(why) => Verdict::Unobservable(why.clone()),
        None => Verdict::NotApplicable(format!("{} does not run on this node", component.name())),
    }
}

/// One test of a setting: whether it holds, and the resolved value; or
/// the error verdict (unreadable setting, bad operand, or candidate
/// defaults that disagree while the version is unknown).
fn judge_test(
    component: Component,
    comp: &ComponentFacts,
    test: &SettingTest,
    bench: &Benchmark,
    facts: &Facts,
) -> Result<(bool, Resolved), Verdict> {
    let resolved =
        resolve(component, comp, test, bench, facts.version.as_ref()).map_err(Verdict::Error)?;
    let operand = test.operand().map_err(Verdict::Error)?;
    let verdicts: Result<Vec<bool>, String> = if resolved.candidates.is_empty() {
        test.op
            .apply(resolved.value.as_ref(), operand.as_ref())
            .map(|ok| vec![ok])
    } else {
        resolved
            .candidates
            .iter()
            .map(|v| test.op.apply(Some(v), operand.as_ref()))
            .collect()
    };
    match verdicts {
        Ok(v) if v.windows(2).all(|w| w.first() == w.get(1)) => {
            Ok((v.first().copied().unwrap_or(false), resolved))
        }
        // The candidate defaults disagree: the version is needed.
        Ok(_) => Err(Verdict::Error(resolved.detail.unwrap_or_default())),
        Err(e) => Err(Verdict::Error(format!("{}: {e}", test.display_name()))),
    }
}

/// A resolved value as the report shows it: the value, every candidate
/// default, or `<not set>`.
fn shown_value(resolved: &Resolved) -> String {
    match (&resolved.value, resolved.candidates.is_empty()) {
        (Some(v), _) => v.to_string(),
        (None, false) => resolved
            .candidates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        (None, true) => "<not set>".to_string(),
    }
}

fn short_name(test: &SettingTest, uses_config: bool) -> String {
    let flag = test.flag.as_ref().map(|f| format!("--{f}"));
    let base = if uses_config {
        test.config.clone().or(flag)
    } else {
        flag.or_else(|| test.config.clone())
    }
    .unwrap_or_default();
    match &test.key {
        Some(k) => format!("{base}.{k}"),
        None => base,
    }
}

fn describe_expectation(test: &SettingTest, uses_config: bool) -> String {
    let name = short_name(test, uses_config);
    match &test.value {
        None => format!("'{name}' {}", test.op),
        Some(v) => {
            let shown = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            format!("'{name}' {} '{shown}'", test.op)
        }
    }
}

/// Resolves a setting: flag > config drop-ins > config file > environment >
/// built-in default (for the component's version and mode). kube-proxy
/// with `--config` ignores flags.
pub fn resolve(
    component: Component,
    comp: &ComponentFacts,
    test: &SettingTest,
    bench: &Benchmark,
    version: Option<&KubeVersion>,
) -> Result<Resolved, String> {
    let uses_config = !matches!(comp.config, ConfigState::NotUsed);
    let flags_count = comp.flags_override_config || !uses_config;
    if let (Some(flag), true) = (&test.flag, flags_count) {
        if let Some(found) = flag_value(comp, flag, test) {
            let value = found.map_err(|e| format!("--{flag} in {}: {e}", comp.argv_source))?;
            if let Some(value) = value {
                return Ok(Resolved {
                    value: Some(value),
                    source: Some(Source::Flag),
                    detail: Some(format!("--{flag} ({})", comp.argv_source)),
                    candidates: Vec::new(),
                });
            }
        }
    }
    if let Some(key) = &test.config {
        match &comp.config {
            ConfigState::Loaded(layers) => {
                let full = match &test.key {
                    Some(k) => format!("{key}.{k}"),
                    None => key.clone(),
                };
                if let Some((json, file)) = layers.lookup(&full) {
                    let value = test
                        .ty
                        .from_json(json)
                        .map_err(|e| format!("{full} in {file}: {e}"))?;
                    if is_zero(&value) && zero_means_default(bench, component, &full) {
                        let mut d = default_value(component, test, bench, version, true)?;
                        d.detail = d.detail.map(|x| {
                            format!("{full}: {value} in {file} is replaced by the default; {x}")
                        });
                        return Ok(d);
                    }
                    return Ok(Resolved {
                        value: Some(value),
                        source: Some(Source::Config),
                        detail: Some(format!("{full} in {file}")),
                        candidates: Vec::new(),
                    });
                }
            }
            ConfigState::Failed { error, .. } => return Err(error.clone()),
            ConfigState::NotUsed => {}
        }
    }
    if let (Some(flag), true) = (&test.flag, flags_count) {
        let env_name = format!("ETCD_{}", flag.replace('-', "_").to_uppercase());
        if component == Component::Etcd {
            if let Some(raw) = comp.env.get(&env_name) {
                let value = test
                    .ty
                    .parse_flag(raw)
                    .map_err(|e| format!("{env_name}: {e}"))?;
                return Ok(Resolved {
                    value: Some(value),
                    source: Some(Source::Env),
                    detail: Some(env_name),
                    candidates: Vec::new(),
                });
            }
        }
    }
    default_value(component, test, bench, version, uses_config)
}

/// The flag's value: `None` if absent; for a map test, `Some(Ok(None))`
/// when the map is there but lacks the key.
fn flag_value(
    comp: &ComponentFacts,
    flag: &str,
    test: &SettingTest,
) -> Option<Result<Option<Value>, String>> {
    match &test.key {
        None => comp.flags.typed(flag, test.ty).map(|r| r.map(Some)),
        Some(key) => {
            let map = comp.flags.typed(flag, ValueType::Map)?;
            Some(map.and_then(|m| match m {
                Value::Map(entries) => match entries.get(key) {
                    Some(raw) => test.ty.parse_flag(raw).map(Some),
                    None => Ok(None),
                },
                _ => Ok(None),
            }))
        }
    }
}

fn default_value(
    component: Component,
    test: &SettingTest,
    bench: &Benchmark,
    version: Option<&KubeVersion>,
    uses_config: bool,
) -> Result<Resolved, String> {
    let Some(setting) = default_setting_name(component, test) else {
        return Ok(unset());
    };
    let entries: Vec<_> = bench
        .defaults
        .iter()
        .filter(|d| d.component == component && d.setting == setting)
        .collect();
    let entry = match version {
        Some(v) => entries
            .into_iter()
            .find(|d| in_range(v.minor_version(), d.since.as_deref(), d.until.as_deref())),
        None => {
            if let Some(resolved) =
                version_dependent_default(component, test, &setting, &entries, uses_config)?
            {
                return Ok(resolved);
            }
            entries.into_iter().next()
        }
    };
    let Some(entry) = entry else {
        return Ok(unset());
    };
    let Some(raw) = default_text(entry, uses_config) else {
        return Ok(unset());
    };
    let value = test
        .ty
        .from_toml(&raw)
        .map_err(|e| format!("default of {setting}: {e}"))?;
    let mode = if uses_config {
        "config-file default"
    } else {
        "flag default"
    };
    Ok(Resolved {
        value: Some(value),
        source: Some(Source::Default),
        detail: Some(format!("{} {mode}: {}", component.name(), entry.doc)),
        candidates: Vec::new(),
    })
}

/// The name a setting's defaults are listed under: the config key for the
/// kubelet and kube-proxy, else the flag; with the map key appended.
fn default_setting_name(component: Component, test: &SettingTest) -> Option<String> {
    let setting = match (component, &test.config, &test.flag) {
        (Component::Kubelet | Component::KubeProxy, Some(c), _) => c.clone(),
        (_, _, Some(f)) => f.clone(),
        (_, Some(c), None) => c.clone(),
        (_, None, None) => return None,
    };
    Some(match &test.key {
        Some(k) => format!("{setting}.{k}"),
        None => setting,
    })
}

/// A default entry's value in the mode the component runs in.
fn default_text(d: &crate::definitions::Default, uses_config: bool) -> Option<toml::Value> {
    if uses_config {
        d.config_file.clone().or_else(|| d.flag.clone())
    } else {
        d.flag.clone()
    }
}

/// With the version unknown: when the defaults differ between releases,
/// every candidate (the caller decides if they all give one verdict);
/// `None` when they agree.
fn version_dependent_default(
    component: Component,
    test: &SettingTest,
    setting: &str,
    entries: &[&crate::definitions::Default],
    uses_config: bool,
) -> Result<Option<Resolved>, String> {
    let values: Vec<_> = entries
        .iter()
        .map(|d| default_text(d, uses_config))
        .collect();
    if values.windows(2).all(|w| w.first() == w.get(1)) {
        return Ok(None);
    }
    let candidates = values
        .iter()
        .flatten()
        .map(|raw| test.ty.from_toml(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("default of {setting}: {e}"))?;
    Ok(Some(Resolved {
        value: None,
        source: Some(Source::Default),
        detail: Some(format!(
            "{setting} is not set and its {} default depends on the Kubernetes version, which is unknown (pass --kubernetes-version)",
            component.name()
        )),
        candidates,
    }))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Duration(d) => d.is_zero(),
        Value::Int(n) => *n == 0,
        _ => false,
    }
}

fn zero_means_default(bench: &Benchmark, component: Component, setting: &str) -> bool {
    bench
        .defaults
        .iter()
        .any(|d| d.component == component && d.setting == setting && d.zero_means_default)
}

fn unset() -> Resolved {
    Resolved {
        value: None,
        source: None,
        detail: None,
        candidates: Vec::new(),
    }
}

fn in_range(v: (u32, u32), since: Option<&str>, until: Option<&str>) -> bool {
    let after = since.and_then(parse_minor).is_none_or(|s| v >= s);
    let before = until.and_then(parse_minor).is_none_or(|u| v <= u);
    after && before
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cmdline::Flags;
    use crate::facts::ComponentFacts;
    use crate::files::Accounts;
    use crate::layout::Layout;
    use std::collections::{BTreeMap, BTreeSet};

    const BENCH: &str = r#"
benchmark = "t"
kubernetes = "1.32"
[[section]]
id = "4"
title = "t"
target = "node"
group = [{ id = "4.2", title = "Kubelet" }]
[[check]]
id = "4.2.8"
title = "t"
automated = true
remediation = "r"
[check.audit]
kind = "setting"
component = "kubelet"
test = [{ flag = "event-qps", config = "eventRecordQPS", type = "int", op = "gt", value = 10 }]
[[default]]
component = "kubelet"
setting = "eventRecordQPS"
type = "int"
config_file = 5
flag = 5
until = "1.26"
doc = "old"
[[default]]
component = "kubelet"
setting = "eventRecordQPS"
type = "int"
config_file = 50
flag = 50
since = "1.27"
doc = "new"
"#;

    fn facts(version: Option<&str>, args: &[&str]) -> Facts {
        let dir = std::env::temp_dir();
        let root = nodeguard_common::hostroot::HostRoot::open(dir).unwrap();
        let kubelet = ComponentFacts {
            pid: Some(1),
            argv_source: "test".into(),
            flags: Flags::parse(args),
            config: ConfigState::NotUsed,
            flags_override_config: true,
            env: BTreeMap::new(),
            root,
            view: None,
        };
        Facts {
            layout: Layout::Plain,
            version: version.and_then(|v| KubeVersion::parse(v, "test")),
            version_note: None,
            components: BTreeMap::from([(Component::Kubelet, kubelet)]),
            files: BTreeMap::new(),
            detected_targets: BTreeSet::new(),
            accounts: Accounts::default(),
            warnings: Vec::new(),
            unobservable: BTreeMap::new(),
        }
    }

    #[test]
    fn disagreeing_version_defaults_need_the_version() {
        let bench = Benchmark::parse(BENCH).unwrap();
        let check = &bench.checks[0];
        let unknown = evaluate(check, &bench, &facts(None, &[]));
        assert_eq!(unknown.status, Status::Fail);
        assert_eq!(unknown.reason, Some(Reason::Error));
        assert!(unknown.detail.unwrap().contains("--kubernetes-version"));
        let old = evaluate(check, &bench, &facts(Some("1.26"), &[]));
        assert_eq!(
            (old.status, old.actual.as_str()),
            (Status::Fail, "--event-qps=5")
        );
        let new = evaluate(check, &bench, &facts(Some("1.30"), &[]));
        assert_eq!(
            (new.status, new.source),
            (Status::Pass, Some(Source::Default))
        );
        // A flag decides regardless of the version.
        let flagged = evaluate(check, &bench, &facts(None, &["--event-qps=20"]));
        assert_eq!(
            (flagged.status, flagged.source),
            (Status::Pass, Some(Source::Flag))
        );
    }

    #[test]
    fn long_file_lists_are_capped() {
        let parts: Vec<String> = (0..20).map(|i| format!("/f{i}")).collect();
        let shown = cap_list(&parts, 16);
        assert!(shown.ends_with("… and 4 more"), "{shown}");
        assert_eq!(cap_list(&parts[..2], 16), "/f0; /f1");
    }

    #[test]
    fn version_ranges() {
        assert!(in_range((1, 27), Some("1.27"), None));
        assert!(!in_range((1, 26), Some("1.27"), None));
        assert!(in_range((1, 26), None, Some("1.26")));
        assert!(!in_range((1, 30), None, Some("1.26")));
    }
}
