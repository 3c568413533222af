//! The deployment: the Helm chart, the rendered manifests and how they fit
//! the entrypoint scripts and the image.
//!
//! The chart checks need Helm's engine and the Kubernetes validators, which
//! are Python packages (tests/setup/deploy.sh installs them into the CI
//! venv); `tests/deploy/check_chart.py` runs them all and this module runs it.
//! Without the venv these tests skip loudly.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{run, workspace_root};

/// The CI venv's Python, if it has the chart validators.
fn validator_python() -> Option<PathBuf> {
    let venv = std::env::var_os("NODEGUARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/nodeguard-venv"));
    let python = venv.join("bin/python");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import helm_python, kubernetes_validate, yaml, yamllint, checkov",
        ])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

macro_rules! python_or_skip {
    () => {
        match validator_python() {
            Some(p) => p,
            None => {
                eprintln!(
                    "SKIPPED: the chart validators are not installed; run `sudo sh tests/setup/deploy.sh`"
                );
                return;
            }
        }
    };
}

#[test]
fn chart_renders_validates_and_keeps_its_privilege_claims() {
    let python = python_or_skip!();
    let out = run(Command::new(python)
        .arg(workspace_root().join("tests/deploy/check_chart.py"))
        .current_dir(workspace_root()));
    out.assert_code(0);
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed"),
        "unexpected summary: {last}"
    );
    let passed: usize = last
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // A dozen scenarios × (privilege claims + every minor from 1.25 ×
    // objects): thousands of checks; a handful would mean the loop broke.
    assert!(passed > 3000, "only {passed} checks ran:\n{}", out.stdout);
}

/// The DaemonSets start scripts that exist, and the image puts them where
/// the chart expects them.
#[test]
fn chart_commands_are_scripts_the_image_ships() {
    let root = workspace_root();
    let rendered = std::fs::read_to_string(root.join("manifests/deploy/nodeguard.yaml"))
        .expect("manifests/deploy/nodeguard.yaml");
    let containerfile = std::fs::read_to_string(root.join("manifests/image/Containerfile"))
        .expect("manifests/image/Containerfile");
    // Each DaemonSet's command and readiness probe.
    let mut seen = std::collections::BTreeSet::new();
    for line in rendered.lines() {
        let Some(rest) = line
            .trim()
            .strip_prefix("command: [\"/opt/nodeguard/scripts/")
        else {
            continue;
        };
        let script = rest.split('"').next().unwrap();
        assert!(
            root.join("scripts").join(script).is_file(),
            "the chart runs scripts/{script}, which does not exist"
        );
        seen.insert(script.to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["bench-node.sh", "bootstrap.sh", "fim.sh", "scan-images.sh"],
        "one entrypoint per DaemonSet"
    );
    assert!(
        containerfile.contains("scripts/ /opt/nodeguard/scripts/"),
        "the Containerfile must copy scripts/ to /opt/nodeguard/scripts/"
    );
}

/// Every tool variable the chart sets (`NODEGUARD_*` but the loop's own
/// `NODEGUARD_LOOP_*`) is one the tool reads: its `--help` lists it. Catches
/// a flag renamed in a tool but not in the chart. The few variables an
/// entrypoint reads itself (not the tool) must be read by that script.
/// Variables the chart sets for an entrypoint script rather than its tool.
const ENTRYPOINT_VARIABLES: &[(&str, &str)] = &[("fim", "NODEGUARD_FIM_MODE")];

#[test]
fn chart_sets_only_variables_the_tools_read() {
    let rendered =
        std::fs::read_to_string(workspace_root().join("manifests/deploy/nodeguard.yaml"))
            .expect("manifests/deploy/nodeguard.yaml");
    let commands: &[(&str, &str, &[&str])] = &[
        ("bootstrap", "install-agent", &["install", "--help"]),
        ("scan-images", "scan-images", &["--help"]),
        ("fim", "fim-check", &["check", "--help"]),
        ("bench-node", "bench-node", &["--help"]),
    ];
    for (component, tool, help_args) in commands {
        let marker = format!("# Source: nodeguard/templates/daemonset-{component}.yaml");
        let section = rendered
            .split("# Source: ")
            .find(|s| format!("# Source: {s}").starts_with(&marker))
            .unwrap_or_else(|| panic!("no DaemonSet for {component}"));
        let vars: Vec<&str> = section
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- name: "))
            .filter(|n| n.starts_with("NODEGUARD_") && !n.starts_with("NODEGUARD_LOOP_"))
            .collect();
        assert!(!vars.is_empty(), "{component}: no tool variables found");
        let help = run(Command::new(crate::harness::bin(tool)).args(*help_args));
        help.assert_code(0);
        let script =
            std::fs::read_to_string(workspace_root().join(format!("scripts/{component}.sh")))
                .unwrap_or_default();
        for var in vars {
            if ENTRYPOINT_VARIABLES.contains(&(*component, var)) {
                assert!(
                    script.contains(&format!("${{{var}")),
                    "{var} is declared an entrypoint variable of {component}, but scripts/{component}.sh does not read it"
                );
                continue;
            }
            assert!(
                help.stdout.contains(&format!("[env: {var}")),
                "the chart sets {var} for {component}, but `{tool} {}` does not list it",
                help_args.join(" ")
            );
        }
    }
}

/// The shipped plain manifests, checked without the Python validators: the
/// bootstrap container is AppArmor-unconfined by annotation (valid on every
/// supported minor: no `appArmorProfile` field, which 1.25-1.29 reject) and
/// SELinux spc_t, and no hostPath of type Directory or File lies outside the
/// paths every node has (the kubelet would leave the pod in ContainerCreating).
#[test]
fn plain_manifests_confine_by_annotation_and_check_only_paths_every_node_has() {
    let rendered =
        std::fs::read_to_string(workspace_root().join("manifests/deploy/nodeguard.yaml"))
            .expect("manifests/deploy/nodeguard.yaml");
    assert!(
        rendered.contains("container.apparmor.security.beta.kubernetes.io/bootstrap: unconfined")
    );
    assert!(!rendered.contains("appArmorProfile:"));
    assert!(rendered.contains("type: spc_t"));
    assert!(rendered.contains("\nkind: Namespace\n"));
    let always = ["/", "/etc", "/proc", "/sys", "/usr", "/var/lib/kubelet"];
    let lines: Vec<&str> = rendered.lines().map(str::trim).collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        if *line != "hostPath:" {
            continue;
        }
        let path = lines[i + 1]
            .strip_prefix("path: ")
            .expect("path after hostPath");
        let kind = lines
            .get(i + 2)
            .and_then(|l| l.strip_prefix("type: "))
            .unwrap_or("");
        if matches!(kind, "Directory" | "File") {
            assert!(
                always.contains(&path),
                "hostPath {path} of type {kind}: a node without it stalls the pod"
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} hostPath volumes found");
}

/// The chart's `bootstrap.packages` and `bootstrap.caBundle`, rendered as
/// the DaemonSet mounts them, are files install-agent accepts as
/// `--packages-file` and `--ca-bundle`: it plans the mirror's package.
#[test]
fn chart_packages_file_is_one_install_agent_accepts() {
    let python = python_or_skip!();
    let dir = crate::harness::TestDir::new("chart-packages");
    let script = r#"
import sys, yaml
deploy, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, deploy); sys.argv = sys.argv[:1]
import check_chart as cc
values = yaml.safe_load(open(deploy + "/scenarios/packages.yaml"))
_, docs = cc.render(values)
cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-bootstrap-config")][0]
for key, value in cm["data"].items():
    open(out + "/" + key, "w").write(value)
"#;
    let out = run(Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(workspace_root().join("tests/deploy"))
        .arg(dir.path()));
    out.assert_code(0);
    let host = dir.join("host");
    std::fs::create_dir_all(host.join("etc")).unwrap();
    std::fs::create_dir_all(host.join("usr/bin")).unwrap();
    std::fs::write(
        host.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    for program in ["dpkg", "apt-get", "systemctl"] {
        let path = host.join("usr/bin").join(program);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir.write("credentials/ACTIVATION_ID", "chart-activation-0001");
    dir.write("credentials/CUSTOMER_ID", "chart-customer-0002");
    let plan = run(Command::new(crate::harness::bin("install-agent"))
        .arg("plan")
        .env("NODEGUARD_FORMAT", "json")
        .env("NODEGUARD_HOST_ROOT", &host)
        .env("NODEGUARD_TARGET_PID", "0")
        .env(
            "NODEGUARD_PROFILE",
            workspace_root().join("install-agent/profiles/qualys-cloud-agent.toml"),
        )
        .env("NODEGUARD_CREDENTIALS_DIR", dir.join("credentials"))
        .env("NODEGUARD_PACKAGES_FILE", dir.join("packages.toml"))
        .env("NODEGUARD_CA_BUNDLE", dir.join("ca.crt")));
    plan.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&plan.stdout).expect("JSON report");
    assert_eq!(report["status"], "planned", "{}", plan.stdout);
    assert_eq!(
        report["package"]["sha256"],
        "5f4dcc3b5aa765d61d8327deb882cf992b95990a9151374abd8ff8c5a7a0fe08"
    );
}
