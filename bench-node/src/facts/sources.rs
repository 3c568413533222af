//! Facts from distribution specifics: k3s' embedded components, static
//! pod manifests, the Kubernetes version and which targets apply.

use std::collections::{BTreeMap, BTreeSet};

use nodeguard_common::hostroot::HostRoot;
use serde_json::Value as Json;

use super::{ComponentFacts, GatherOptions};
use crate::cmdline::Flags;
use crate::config;
use crate::definitions::{Component, Target};
use crate::files;
use crate::layout::Layout;
use crate::procs::{ProcKind, Process};
use crate::version::{self, KubeVersion};

/// `kubelet-arg` (or `kube-proxy-arg`) entries of k3s: from
/// `/etc/rancher/k3s/config.yaml`, `config.yaml.d/*.yaml`, then k3s' argv.
pub(super) fn k3s_component_args(host: &HostRoot, k3s: &Process, key: &str) -> Flags {
    let mut args: Vec<String> = Vec::new();
    let mut files = vec!["/etc/rancher/k3s/config.yaml".to_string()];
    files.extend(
        files::list_dir(host, "/etc/rancher/k3s/config.yaml.d", 0)
            .into_iter()
            .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml")),
    );
    for file in files {
        let Ok(layer) = config::load_file(host, &file) else {
            continue;
        };
        // k3s merges its config files in order: `key` replaces the list so
        // far, `key+` appends to it.
        if let Some(v) = layer.doc.get(key) {
            args = string_list(v);
        }
        if let Some(v) = layer.doc.get(format!("{key}+")) {
            args.extend(string_list(v));
        }
    }
    // Repeated `--kubelet-arg X` on k3s' own command line come last.
    let mut iter = k3s.flag_args().iter();
    while let Some(arg) = iter.next() {
        let prefix = format!("--{key}");
        if let Some(v) = arg.strip_prefix(&format!("{prefix}=")) {
            args.push(v.to_string());
        } else if *arg == prefix {
            if let Some(v) = iter.next() {
                args.push(v.clone());
            }
        }
    }
    let dashed: Vec<String> = args
        .into_iter()
        .map(|a| {
            if a.starts_with("--") {
                a
            } else {
                format!("--{a}")
            }
        })
        .collect();
    Flags::parse(&dashed)
}

fn string_list(v: &Json) -> Vec<String> {
    match v {
        Json::Array(items) => items
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        Json::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The command (argv without the program) and `env` of a static pod's
/// first container.
pub(super) fn static_pod_command(
    host: &HostRoot,
    path: &str,
) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let layer = config::load_file(host, path)?;
    let container = layer
        .doc
        .pointer("/spec/containers/0")
        .ok_or_else(|| format!("{path}: no spec.containers[0]"))?;
    let words = |key: &str| -> Vec<String> {
        container
            .get(key)
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = words("command");
    if !argv.is_empty() {
        argv.remove(0);
    }
    argv.extend(words("args"));
    let env = container
        .get("env")
        .and_then(Json::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|e| {
                    Some((
                        e.get("name")?.as_str()?.to_string(),
                        e.get("value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((argv, env))
}

pub(super) fn detect_version(
    host: &HostRoot,
    opts: &GatherOptions,
    processes: &[Process],
    components: &BTreeMap<Component, ComponentFacts>,
    layout: Layout,
) -> (Option<KubeVersion>, Option<String>) {
    if let Some(v) = &opts.kubernetes_version {
        return (KubeVersion::parse(v, "--kubernetes-version"), None);
    }
    let mut tried = Vec::new();
    let program = processes
        .iter()
        .find(|p| {
            p.kind == ProcKind::Component(Component::Kubelet)
                || matches!(p.kind, ProcKind::K3s { .. })
        })
        .map(Process::program);
    let found = match program {
        Some(program) => version_of_program(host, program, &mut tried),
        None => {
            tried.push("no kubelet process".to_string());
            None
        }
    };
    // Release kubelets built with -trimpath record no link flags; kubeadm
    // nodes installed it as a package, whose version dpkg recorded.
    if let Some(version) = found
        .or_else(|| version_from_dpkg(host))
        .or_else(|| version_from_apiserver_manifest(host, components, layout))
    {
        return (version, None);
    }
    (
        None,
        Some(format!(
            "Kubernetes version unknown ({}); pass --kubernetes-version",
            tried.join("; ")
        )),
    )
}

/// The version of the kubelet (or k3s) program: from an RKE2 data
/// directory in its path, else from its Go build info (a bare name is
/// looked up in the usual bin directories). What failed goes to `tried`.
fn version_of_program(
    host: &HostRoot,
    program: &str,
    tried: &mut Vec<String>,
) -> Option<Option<KubeVersion>> {
    if let Some(v) = version::from_rke2_path(program) {
        return Some(KubeVersion::parse(
            &v,
            format!("RKE2 data directory in {program}"),
        ));
    }
    let candidates: Vec<String> = if program.starts_with('/') {
        vec![program.to_string()]
    } else {
        ["/usr/bin", "/usr/local/bin", "/bin"]
            .iter()
            .map(|d| format!("{d}/{program}"))
            .collect()
    };
    for path in candidates {
        let Ok(mut file) = host.open_file(&path) else {
            continue;
        };
        let found = version::go_modinfo_of(&mut file)
            .map(|m| m.and_then(|m| version::git_version_from_modinfo(&m)));
        match found {
            Ok(Some(v)) => return Some(KubeVersion::parse(&v, format!("Go build info of {path}"))),
            Ok(None) => tried.push(format!(
                "{path} has no Kubernetes version in its Go build info"
            )),
            Err(e) => tried.push(format!("{path}: {e}")),
        }
    }
    None
}

/// The kubelet package's version in `/var/lib/dpkg/status`.
fn version_from_dpkg(host: &HostRoot) -> Option<Option<KubeVersion>> {
    let status = host.read_limited("/var/lib/dpkg/status", 64 << 20).ok()?;
    let v = version::from_dpkg_status(&String::from_utf8_lossy(&status))?;
    Some(KubeVersion::parse(
        &v,
        "kubelet package in /var/lib/dpkg/status",
    ))
}

/// The image tag of the kube-apiserver static pod, on a control-plane node.
fn version_from_apiserver_manifest(
    host: &HostRoot,
    components: &BTreeMap<Component, ComponentFacts>,
    layout: Layout,
) -> Option<Option<KubeVersion>> {
    let manifest = format!("{}/kube-apiserver.yaml", layout.manifest_dir());
    if !components.contains_key(&Component::KubeApiserver) || !host.exists(&manifest) {
        return None;
    }
    let layer = config::load_file(host, &manifest).ok()?;
    let v = layer
        .doc
        .pointer("/spec/containers/0/image")
        .and_then(Json::as_str)
        .and_then(version::from_image)?;
    Some(KubeVersion::parse(&v, format!("image tag in {manifest}")))
}

pub(super) fn detect_targets(
    host: &HostRoot,
    processes: &[Process],
    components: &BTreeMap<Component, ComponentFacts>,
    layout: Layout,
) -> BTreeSet<Target> {
    let mut targets = BTreeSet::new();
    let k3s_server = processes.iter().any(|p| {
        matches!(
            p.kind,
            ProcKind::K3s { server: true } | ProcKind::Rke2 { server: true }
        )
    });
    if components.contains_key(&Component::Kubelet) || layout != Layout::Plain {
        targets.insert(Target::Node);
    }
    let master = [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];
    if k3s_server || master.iter().any(|c| components.contains_key(c)) {
        targets.insert(Target::Master);
    }
    if components.contains_key(&Component::Etcd)
        || host.exists(format!("{}/etcd.yaml", layout.manifest_dir()))
    {
        targets.insert(Target::Etcd);
    }
    targets
}
