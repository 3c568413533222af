//! Gathering the facts checks are judged on: the components' command lines
//! and config layers, the files behind each check role, the layout and the
//! Kubernetes version. Everything is read under the host root; nothing is
//! executed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nodeguard_common::hostroot::HostRoot;
use serde_json::Value as Json;

use crate::cmdline::Flags;
use crate::config::{self, Layers};
use crate::definitions::{Component, FileRole, Target};
use crate::files::{self, Accounts, FileSet, Source};
use crate::layout::{Layout, K3S_KUBELET_ARGS, UNIT_DIRS};
use crate::procs::{self, ProcKind, Process};
use crate::version::{self, KubeVersion};

/// What gathering needs to know.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// The host's `/proc` (default `<host-root>/proc`).
    pub proc_dir: PathBuf,
    /// `--kubernetes-version`, when the operator knows better.
    pub kubernetes_version: Option<String>,
}

/// The state of a component's config file.
#[derive(Debug, Clone)]
pub enum ConfigState {
    /// The component runs without `--config`: flag defaults apply.
    NotUsed,
    Loaded(Layers),
    /// A config file exists but cannot be read or parsed.
    Failed {
        paths: Vec<String>,
        error: String,
    },
}

/// One component as the node runs it.
#[derive(Debug, Clone)]
pub struct ComponentFacts {
    pub pid: Option<u32>,
    /// Where the command line came from, e.g. `/proc/812/cmdline`.
    pub argv_source: String,
    pub flags: Flags,
    pub config: ConfigState,
    /// kube-proxy ignores its flags when `--config` is given
    /// (kubernetes/kubernetes#107156); the kubelet lets flags win.
    pub flags_override_config: bool,
    pub env: BTreeMap<String, String>,
    /// The filesystem view the component's own paths are relative to.
    pub root: HostRoot,
}

/// Everything the audits read.
#[derive(Debug)]
pub struct Facts {
    pub layout: Layout,
    pub version: Option<KubeVersion>,
    /// Why the version is unknown, when it is.
    pub version_note: Option<String>,
    pub components: BTreeMap<Component, ComponentFacts>,
    pub files: BTreeMap<FileRole, FileSet>,
    pub detected_targets: BTreeSet<Target>,
    pub accounts: Accounts,
    pub warnings: Vec<String>,
}

impl Facts {
    /// Gathers the facts for the given file roles.
    pub fn gather(host: &HostRoot, opts: &GatherOptions, roles: &BTreeSet<FileRole>) -> Facts {
        let mut warnings = Vec::new();
        let processes = match procs::scan(&opts.proc_dir) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!(
                    "cannot list processes in {}: {e}; only files are checked",
                    opts.proc_dir.display()
                ));
                Vec::new()
            }
        };
        let layout = Layout::detect(host, &processes);
        let mut g = Gatherer {
            host,
            proc_dir: &opts.proc_dir,
            processes: &processes,
            layout,
            warnings: &mut warnings,
        };
        let mut components = BTreeMap::new();
        for component in Component::ALL {
            if let Some(facts) = g.component(component) {
                components.insert(component, facts);
            }
        }
        let files = roles
            .iter()
            .map(|role| (*role, g.file_role(*role, &components)))
            .collect();
        let (version, version_note) = detect_version(host, opts, &processes, &components, layout);
        let detected_targets = detect_targets(host, &processes, &components, layout);
        Facts {
            layout,
            version,
            version_note,
            components,
            files,
            detected_targets,
            accounts: Accounts::load(host),
            warnings,
        }
    }
}

struct Gatherer<'a> {
    host: &'a HostRoot,
    proc_dir: &'a Path,
    processes: &'a [Process],
    layout: Layout,
    warnings: &'a mut Vec<String>,
}

impl Gatherer<'_> {
    fn process(&self, component: Component) -> Option<&Process> {
        let mut matching = self
            .processes
            .iter()
            .filter(|p| p.kind == ProcKind::Component(component));
        let first = matching.next()?;
        Some(first)
    }

    fn k3s(&self) -> Option<&Process> {
        self.processes
            .iter()
            .find(|p| matches!(p.kind, ProcKind::K3s { .. }))
    }

    /// The root a process's paths are relative to: the host root for a
    /// process in the host's mount namespace, else its own `/proc/<pid>/root`.
    fn root_of(&self, process: &Process) -> HostRoot {
        if process.host_mount_ns {
            return self.host.clone();
        }
        HostRoot::open_process_root(procs::process_root(self.proc_dir, process.pid))
            .unwrap_or_else(|_| self.host.clone())
    }

    fn component(&mut self, component: Component) -> Option<ComponentFacts> {
        match component {
            Component::Kubelet => self.kubelet(),
            Component::KubeProxy => self.kube_proxy(),
            _ => self.control_plane(component),
        }
    }

    fn kubelet(&mut self) -> Option<ComponentFacts> {
        let (pid, argv_source, flags, root) = if let Some(p) = self.process(Component::Kubelet) {
            (
                Some(p.pid),
                format!("/proc/{}/cmdline", p.pid),
                Flags::parse(p.flag_args()),
                self.root_of(p),
            )
        } else if let Some(k3s) = self.k3s() {
            let mut flags = Flags::parse(K3S_KUBELET_ARGS);
            if self
                .host
                .exists(self.layout.kubelet_config_dir().unwrap_or("/nonexistent"))
            {
                if let Some(dir) = self.layout.kubelet_config_dir() {
                    flags.extend(Flags::parse(&[format!("--config-dir={dir}")]));
                }
            }
            flags.extend(k3s_component_args(self.host, k3s, "kubelet-arg"));
            (
                Some(k3s.pid),
                "k3s built-in kubelet arguments, /etc/rancher/k3s/config.yaml kubelet-arg, k3s --kubelet-arg".to_string(),
                flags,
                self.host.clone(),
            )
        } else {
            // No process visible (no hostPID?): fall back to the layout's
            // config file, which is what the kubelet there is started with.
            let config = self
                .layout
                .kubelet_config()
                .iter()
                .find(|p| self.host.exists(p))?;
            self.warnings.push(format!(
                "no kubelet process found under {}; using the {} layout's config {config} (flags unknown)",
                self.proc_dir.display(),
                self.layout.name()
            ));
            let flags = Flags::parse(&[format!("--config={config}")]);
            (
                None,
                format!("{} layout default", self.layout.name()),
                flags,
                self.host.clone(),
            )
        };
        let config = load_config(&root, &flags);
        Some(ComponentFacts {
            pid,
            argv_source,
            flags,
            config,
            flags_override_config: true,
            env: BTreeMap::new(),
            root,
        })
    }

    fn kube_proxy(&mut self) -> Option<ComponentFacts> {
        if let Some(p) = self.process(Component::KubeProxy) {
            let root = self.root_of(p);
            let flags = Flags::parse(p.flag_args());
            let config = load_config(&root, &flags);
            return Some(ComponentFacts {
                pid: Some(p.pid),
                argv_source: format!("/proc/{}/cmdline", p.pid),
                flags,
                config,
                flags_override_config: false,
                env: BTreeMap::new(),
                root,
            });
        }
        let k3s = self.k3s()?;
        let flags = k3s_component_args(self.host, k3s, "kube-proxy-arg");
        if flags.contains("disable-kube-proxy") {
            return None;
        }
        Some(ComponentFacts {
            pid: Some(k3s.pid),
            argv_source: "k3s embedded kube-proxy (kube-proxy-arg)".to_string(),
            flags,
            config: ConfigState::NotUsed,
            flags_override_config: true,
            env: BTreeMap::new(),
            root: self.host.clone(),
        })
    }

    fn control_plane(&mut self, component: Component) -> Option<ComponentFacts> {
        if let Some(p) = self.process(component) {
            let env = if component == Component::Etcd {
                procs::environ(self.proc_dir, p.pid)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("ETCD_"))
                    .collect()
            } else {
                BTreeMap::new()
            };
            return Some(ComponentFacts {
                pid: Some(p.pid),
                argv_source: format!("/proc/{}/cmdline", p.pid),
                flags: Flags::parse(p.flag_args()),
                config: ConfigState::NotUsed,
                flags_override_config: true,
                env,
                root: self.root_of(p),
            });
        }
        let manifest = format!("{}/{}.yaml", self.layout.manifest_dir(), component.name());
        if !self.host.exists(&manifest) {
            return None;
        }
        match static_pod_command(self.host, &manifest) {
            Ok((argv, env)) => Some(ComponentFacts {
                pid: None,
                argv_source: format!("static pod manifest {manifest}"),
                flags: Flags::parse(&argv),
                config: ConfigState::NotUsed,
                flags_override_config: true,
                env,
                root: self.host.clone(),
            }),
            Err(e) => {
                self.warnings
                    .push(format!("{} not checked: {e}", component.name()));
                None
            }
        }
    }

    fn file_role(&self, role: FileRole, comps: &BTreeMap<Component, ComponentFacts>) -> FileSet {
        let host = self.host;
        let layout = self.layout;
        let from_layout = |paths: &[&str], what: &str| {
            let candidates: Vec<String> = paths.iter().map(|p| (*p).to_string()).collect();
            files::existing(
                host,
                &candidates,
                Source::Default,
                format!("{} layout", layout.name()),
                what,
            )
        };
        let kubelet = comps.get(&Component::Kubelet);
        match role {
            FileRole::KubeletUnit => self.kubelet_unit(),
            FileRole::KubeletKubeconfig => match kubelet.and_then(|k| k.flags.raw("kubeconfig")) {
                Some(p) if !p.is_empty() => files::existing(
                    &kubelet_root(kubelet, host),
                    &[config::absolute(p)],
                    Source::Flag,
                    "kubelet --kubeconfig",
                    "kubelet kubeconfig",
                ),
                _ => from_layout(layout.kubelet_kubeconfig(), "kubelet kubeconfig"),
            },
            FileRole::KubeletConfig => match kubelet.map(|k| &k.config) {
                Some(ConfigState::Loaded(layers)) => files::existing(
                    &kubelet_root(kubelet, host),
                    &layers.paths(),
                    Source::Flag,
                    "kubelet --config / --config-dir",
                    "kubelet config file",
                ),
                Some(ConfigState::Failed { paths, .. }) => files::existing(
                    &kubelet_root(kubelet, host),
                    paths,
                    Source::Flag,
                    "kubelet --config / --config-dir",
                    "kubelet config file",
                ),
                Some(ConfigState::NotUsed) => {
                    FileSet::Absent("the kubelet runs without a config file (--config)".into())
                }
                None => from_layout(layout.kubelet_config(), "kubelet config file"),
            },
            FileRole::KubeletClientCa => self.kubelet_client_ca(kubelet),
            FileRole::ProxyKubeconfig => self.proxy_kubeconfig(comps.get(&Component::KubeProxy)),
            FileRole::ApiserverManifest
            | FileRole::ControllerManagerManifest
            | FileRole::SchedulerManifest
            | FileRole::EtcdManifest => {
                let name = match role {
                    FileRole::ApiserverManifest => "kube-apiserver",
                    FileRole::ControllerManagerManifest => "kube-controller-manager",
                    FileRole::SchedulerManifest => "kube-scheduler",
                    _ => "etcd",
                };
                let path = format!("{}/{name}.yaml", layout.manifest_dir());
                files::existing(
                    host,
                    &[path],
                    Source::Default,
                    format!("{} layout", layout.name()),
                    &format!("{name} static pod manifest"),
                )
            }
            FileRole::CniConfig => {
                let list = files::list_dir(host, layout.cni_dir(), 0);
                files::existing(
                    host,
                    &list,
                    Source::Default,
                    layout.cni_dir(),
                    "CNI configuration file",
                )
            }
            FileRole::EtcdDataDir => {
                let etcd = comps.get(&Component::Etcd);
                let flagged = etcd.and_then(|e| {
                    e.flags
                        .raw("data-dir")
                        .map(str::to_string)
                        .or_else(|| e.env.get("ETCD_DATA_DIR").cloned())
                });
                match flagged {
                    Some(dir) => files::existing(
                        host,
                        &[dir],
                        Source::Flag,
                        "etcd --data-dir",
                        "etcd data directory",
                    ),
                    None if etcd.is_some() => {
                        from_layout(&[layout.etcd_data_dir()], "etcd data directory")
                    }
                    None => FileSet::Absent("etcd does not run on this node".into()),
                }
            }
            FileRole::AdminKubeconfig => {
                from_layout(layout.admin_kubeconfigs(), "administrative kubeconfig")
            }
            FileRole::SchedulerKubeconfig => component_kubeconfig(
                host,
                comps.get(&Component::KubeScheduler),
                "/etc/kubernetes/scheduler.conf",
                "kube-scheduler",
            ),
            FileRole::ControllerManagerKubeconfig => component_kubeconfig(
                host,
                comps.get(&Component::KubeControllerManager),
                "/etc/kubernetes/controller-manager.conf",
                "kube-controller-manager",
            ),
            FileRole::PkiTree | FileRole::PkiCerts | FileRole::PkiKeys => {
                let dir = layout.pki_dir();
                if !host.exists(dir) {
                    return FileSet::Absent(format!("no PKI directory {dir}"));
                }
                let mut list = files::list_dir(host, dir, 3);
                match role {
                    FileRole::PkiTree => list.insert(0, dir.to_string()),
                    FileRole::PkiCerts => list.retain(|p| p.ends_with(".crt")),
                    _ => list.retain(|p| p.ends_with(".key")),
                }
                files::existing(host, &list, Source::Default, dir, "PKI file")
            }
        }
    }

    fn kubelet_unit(&self) -> FileSet {
        let kubelet_pid = self
            .process(Component::Kubelet)
            .map(|p| p.pid)
            .or_else(|| self.k3s().map(|p| p.pid));
        let from_cgroup = kubelet_pid.and_then(|pid| procs::systemd_unit(self.proc_dir, pid));
        let (units, source, detail): (Vec<String>, Source, String) = match &from_cgroup {
            Some(unit) => (
                vec![unit.clone()],
                Source::Flag,
                format!("systemd unit {unit} of the kubelet process (cgroup)"),
            ),
            None => (
                self.layout
                    .kubelet_units()
                    .iter()
                    .map(|u| (*u).to_string())
                    .collect(),
                Source::Default,
                format!("{} layout", self.layout.name()),
            ),
        };
        let mut candidates = Vec::new();
        for unit in &units {
            if let Some(main) = UNIT_DIRS
                .iter()
                .map(|d| format!("{d}/{unit}"))
                .find(|p| self.host.exists(p))
            {
                candidates.push(main);
            }
            for dir in UNIT_DIRS {
                candidates.extend(
                    files::list_dir(self.host, &format!("{dir}/{unit}.d"), 0)
                        .into_iter()
                        .filter(|p| p.ends_with(".conf")),
                );
            }
            if !candidates.is_empty() {
                break;
            }
        }
        if candidates.is_empty() {
            return FileSet::Absent(format!(
                "no systemd unit file for {} under {}",
                units.join(" or "),
                UNIT_DIRS.join(", ")
            ));
        }
        files::existing(self.host, &candidates, source, detail, "kubelet unit file")
    }

    fn kubelet_client_ca(&self, kubelet: Option<&ComponentFacts>) -> FileSet {
        let root = kubelet_root(kubelet, self.host);
        if let Some(k) = kubelet {
            if let Some(p) = k.flags.raw("client-ca-file").filter(|p| !p.is_empty()) {
                return files::existing(
                    &root,
                    &[config::absolute(p)],
                    Source::Flag,
                    "kubelet --client-ca-file",
                    "client CA file",
                );
            }
            match &k.config {
                ConfigState::Loaded(layers) => {
                    if let Some((Json::String(p), file)) =
                        layers.lookup("authentication.x509.clientCAFile")
                    {
                        return files::existing(
                            &root,
                            &[config::absolute(p)],
                            Source::Config,
                            format!("authentication.x509.clientCAFile in {file}"),
                            "client CA file",
                        );
                    }
                }
                ConfigState::Failed { error, .. } => return FileSet::Error(error.clone()),
                ConfigState::NotUsed => {}
            }
            if k.pid.is_some() {
                return FileSet::Absent(
                    "the kubelet is not configured with a client CA file".into(),
                );
            }
        }
        let candidates: Vec<String> = self
            .layout
            .kubelet_client_ca()
            .iter()
            .map(|p| (*p).to_string())
            .collect();
        files::existing(
            self.host,
            &candidates,
            Source::Default,
            format!("{} layout", self.layout.name()),
            "client CA file",
        )
    }

    fn proxy_kubeconfig(&self, proxy: Option<&ComponentFacts>) -> FileSet {
        if let Some(p) = proxy.filter(|p| p.argv_source.starts_with("/proc")) {
            let from_flag = p
                .flags
                .raw("kubeconfig")
                .filter(|v| !v.is_empty())
                .map(|v| {
                    (
                        v.to_string(),
                        Source::Flag,
                        "kube-proxy --kubeconfig".to_string(),
                    )
                });
            let from_config = match &p.config {
                ConfigState::Loaded(layers) => layers
                    .lookup("clientConnection.kubeconfig")
                    .and_then(|(v, file)| {
                        v.as_str().map(|s| {
                            (
                                s.to_string(),
                                Source::Config,
                                format!("clientConnection.kubeconfig in {file}"),
                            )
                        })
                    }),
                _ => None,
            };
            // With --config, kube-proxy takes the kubeconfig from the file.
            let chosen = if p.flags_override_config || from_config.is_none() {
                from_flag.or(from_config)
            } else {
                from_config
            };
            return match chosen {
                Some((path, source, detail)) => files::existing(
                    &p.root,
                    &[config::absolute(&path)],
                    source,
                    detail,
                    "kube-proxy kubeconfig",
                ),
                None => FileSet::Absent(
                    "kube-proxy runs without a kubeconfig (in-cluster credentials)".into(),
                ),
            };
        }
        let candidates: Vec<String> = self
            .layout
            .proxy_kubeconfig()
            .iter()
            .map(|p| (*p).to_string())
            .collect();
        files::existing(
            self.host,
            &candidates,
            Source::Default,
            format!("{} layout", self.layout.name()),
            "kube-proxy kubeconfig",
        )
    }
}

fn kubelet_root(kubelet: Option<&ComponentFacts>, host: &HostRoot) -> HostRoot {
    kubelet.map_or_else(|| host.clone(), |k| k.root.clone())
}

fn component_kubeconfig(
    host: &HostRoot,
    comp: Option<&ComponentFacts>,
    default: &str,
    name: &str,
) -> FileSet {
    match comp
        .and_then(|c| c.flags.raw("kubeconfig"))
        .filter(|p| !p.is_empty())
    {
        Some(p) => files::existing(
            host,
            &[config::absolute(p)],
            Source::Flag,
            format!("{name} --kubeconfig"),
            &format!("{name} kubeconfig"),
        ),
        None => files::existing(
            host,
            &[default.to_string()],
            Source::Default,
            "kubeadm default",
            &format!("{name} kubeconfig"),
        ),
    }
}

/// Loads `--config` and `--config-dir` of a component.
fn load_config(root: &HostRoot, flags: &Flags) -> ConfigState {
    let file = flags
        .raw("config")
        .filter(|p| !p.is_empty())
        .map(config::absolute);
    let dir = flags
        .raw("config-dir")
        .filter(|p| !p.is_empty())
        .map(config::absolute);
    if file.is_none() && dir.is_none() {
        return ConfigState::NotUsed;
    }
    let mut layers = Layers::default();
    let mut paths: Vec<String> = file.iter().cloned().collect();
    if let Some(dir) = &dir {
        paths.extend(config::drop_in_paths(root, dir));
    }
    let failed = |error: String| ConfigState::Failed {
        paths: paths.clone(),
        error,
    };
    if let Some(path) = &file {
        match config::load_file(root, path) {
            Ok(layer) => layers.layers.push(layer),
            Err(e) => return failed(e),
        }
    }
    if let Some(dir) = &dir {
        match config::load_drop_ins(root, dir) {
            Ok(drop_ins) => layers.layers.extend(drop_ins),
            Err(e) => return failed(e),
        }
    }
    ConfigState::Loaded(layers)
}

/// `kubelet-arg` (or `kube-proxy-arg`) entries of k3s: from
/// `/etc/rancher/k3s/config.yaml`, `config.yaml.d/*.yaml`, then k3s' argv.
fn k3s_component_args(host: &HostRoot, k3s: &Process, key: &str) -> Flags {
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
fn static_pod_command(
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

fn detect_version(
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
    let binary = processes
        .iter()
        .find(|p| {
            p.kind == ProcKind::Component(Component::Kubelet)
                || matches!(p.kind, ProcKind::K3s { .. })
        })
        .map(Process::program)
        .map(str::to_string);
    if let Some(program) = &binary {
        if let Some(v) = version::from_rke2_path(program) {
            return (
                KubeVersion::parse(&v, format!("RKE2 data directory in {program}")),
                None,
            );
        }
        let candidates: Vec<String> = if program.starts_with('/') {
            vec![program.clone()]
        } else {
            ["/usr/bin", "/usr/local/bin", "/bin"]
                .iter()
                .map(|d| format!("{d}/{program}"))
                .collect()
        };
        for path in candidates {
            let Ok(real) = host.resolve(&path) else {
                continue;
            };
            match version::from_go_binary(&real) {
                Ok(Some(v)) => {
                    return (
                        KubeVersion::parse(&v, format!("Go build info of {path}")),
                        None,
                    )
                }
                Ok(None) => tried.push(format!(
                    "{path} has no Kubernetes version in its Go build info"
                )),
                Err(e) => tried.push(format!("{path}: {e}")),
            }
        }
    } else {
        tried.push("no kubelet process".to_string());
    }
    // Release kubelets built with -trimpath record no link flags; kubeadm
    // nodes installed it as a package, whose version dpkg recorded.
    if let Ok(status) = host.read_limited("/var/lib/dpkg/status", 64 << 20) {
        if let Some(v) = version::from_dpkg_status(&String::from_utf8_lossy(&status)) {
            return (
                KubeVersion::parse(&v, "kubelet package in /var/lib/dpkg/status"),
                None,
            );
        }
    }
    let manifest = format!("{}/kube-apiserver.yaml", layout.manifest_dir());
    if components.contains_key(&Component::KubeApiserver) && host.exists(&manifest) {
        if let Ok(layer) = config::load_file(host, &manifest) {
            if let Some(v) = layer
                .doc
                .pointer("/spec/containers/0/image")
                .and_then(Json::as_str)
                .and_then(version::from_image)
            {
                return (
                    KubeVersion::parse(&v, format!("image tag in {manifest}")),
                    None,
                );
            }
        }
    }
    (
        None,
        Some(format!(
            "Kubernetes version unknown ({}); pass --kubernetes-version",
            tried.join("; ")
        )),
    )
}

fn detect_targets(
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
