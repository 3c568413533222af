//! Gathering the facts checks are judged on: the components' command lines
//! and config layers, the files behind each check role, the layout and the
//! Kubernetes version. Everything is read under the host root; nothing is
//! executed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nodeguard_common::hostroot::HostRoot;

mod roles;
mod sources;

use crate::cmdline::Flags;
use crate::config::{self, Layers};
use crate::definitions::{Component, FileRole, Target};
use crate::files::{Accounts, FileSet};
use crate::layout::{Layout, K3S_KUBELET_ARGS};
use crate::mounts::{MountTable, ProcessView};
use crate::procs::{self, ProcKind, Process};
use crate::version::KubeVersion;
use sources::{detect_targets, detect_version, k3s_component_args, static_pod_command};

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
    /// For a containerised component read through the host root (`root`
    /// is then the host's): how its paths map to host paths.
    pub view: Option<ProcessView>,
}

impl ComponentFacts {
    /// A path of the component as a path under `root`: mapped through
    /// the component's mounts when it has a view, else unchanged.
    pub fn path_under_root(&self, path: &str) -> String {
        self.view
            .as_ref()
            .and_then(|view| view.host_path(path))
            .unwrap_or_else(|| path.to_owned())
    }
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
    /// Components that run but whose settings cannot be seen, and why
    /// (the control plane inside a k3s server process).
    pub unobservable: BTreeMap<Component, String>,
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
        if processes.is_empty() && !procs::has_processes(&opts.proc_dir) {
            warnings.push(format!(
                "{} lists no processes: the host's /proc is not visible there (in a hostPID pod pass --proc-dir /proc)",
                opts.proc_dir.display()
            ));
        }
        log::debug!(
            "found {} Kubernetes processes under {}",
            processes.len(),
            opts.proc_dir.display()
        );
        let layout = Layout::detect(host, &processes);
        let mut g = Gatherer {
            host,
            proc_dir: &opts.proc_dir,
            processes: &processes,
            layout,
            warnings: &mut warnings,
        };
        let mut components = BTreeMap::new();
        let mut unobservable = BTreeMap::new();
        let k3s_server = processes
            .iter()
            .any(|p| p.kind == ProcKind::K3s { server: true });
        for component in Component::ALL {
            if let Some(facts) = g.component(component) {
                components.insert(component, facts);
            } else if k3s_server && component.is_control_plane() && component != Component::Etcd {
                unobservable.insert(
                    component,
                    format!(
                        "the k3s server runs {0} inside its own process, so its arguments are not visible; review {0}-arg in /etc/rancher/k3s/config.yaml",
                        component.name().trim_start_matches("kube-")
                    ),
                );
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
            unobservable,
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

impl<'a> Gatherer<'a> {
    fn process(&self, component: Component) -> Option<&'a Process> {
        let mut matching = self
            .processes
            .iter()
            .filter(|p| p.kind == ProcKind::Component(component));
        let first = matching.next()?;
        Some(first)
    }

    fn k3s(&self) -> Option<&'a Process> {
        self.processes
            .iter()
            .find(|p| matches!(p.kind, ProcKind::K3s { .. }))
    }

    /// The root a process's paths are relative to: the host root for a
    /// process in the host's mount namespace, else its own `/proc/<pid>/root`.
    /// When that cannot be opened, one warning says why (naming the LSM and
    /// the chart value when one likely denied it) and the host root is used.
    fn root_of(&mut self, process: &Process) -> HostRoot {
        if process.host_mount_ns {
            return self.host.clone();
        }
        let path = procs::process_root(self.proc_dir, process.pid);
        match HostRoot::open(&path) {
            Ok(root) => root,
            Err(e) => {
                self.warnings.push(procs::proc_root_error(
                    &nodeguard_common::lsm::SystemFiles,
                    &path,
                    &e,
                ));
                self.host.clone()
            }
        }
    }

    /// A containerised process's mounts mapped to the host's, when both
    /// mount tables can be read (they need no ptrace access).
    fn view_of(&self, process: &Process) -> Option<ProcessView> {
        let own = MountTable::read(self.proc_dir, process.pid).ok()?;
        let host = MountTable::read(self.proc_dir, 1).ok()?;
        Some(ProcessView { own, host })
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
            let drop_ins = self.layout.kubelet_config_dir();
            if let Some(dir) = drop_ins.filter(|d| self.host.exists(d)) {
                flags.extend(Flags::parse(&[format!("--config-dir={dir}")]));
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
            view: None,
        })
    }

    fn kube_proxy(&mut self) -> Option<ComponentFacts> {
        if let Some(p) = self.process(Component::KubeProxy) {
            let flags = Flags::parse(p.flag_args());
            if let Some(facts) = self.kube_proxy_through_host(p, &flags) {
                return Some(facts);
            }
            let root = self.root_of(p);
            let config = load_config(&root, &flags);
            return Some(ComponentFacts {
                pid: Some(p.pid),
                argv_source: format!("/proc/{}/cmdline", p.pid),
                flags,
                config,
                flags_override_config: false,
                env: BTreeMap::new(),
                root,
                view: None,
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
            view: None,
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
            let root = self.root_of(p);
            let flags = Flags::parse(p.flag_args());
            return Some(ComponentFacts {
                pid: Some(p.pid),
                argv_source: format!("/proc/{}/cmdline", p.pid),
                config: control_plane_config(component, &root, &flags),
                flags,
                flags_override_config: component != Component::Etcd,
                env,
                root,
                view: None,
            });
        }
        let manifest = format!("{}/{}.yaml", self.layout.manifest_dir(), component.name());
        if !self.host.exists(&manifest) {
            return None;
        }
        match static_pod_command(self.host, &manifest) {
            Ok((argv, env)) => {
                let flags = Flags::parse(&argv);
                Some(ComponentFacts {
                    pid: None,
                    argv_source: format!("static pod manifest {manifest}"),
                    config: control_plane_config(component, self.host, &flags),
                    flags,
                    flags_override_config: component != Component::Etcd,
                    env,
                    root: self.host.clone(),
                    view: None,
                })
            }
            Err(e) => {
                self.warnings
                    .push(format!("{} not checked: {e}", component.name()));
                None
            }
        }
    }
}

impl Gatherer<'_> {
    /// kube-proxy in its own pod (kubeadm and most managed clusters), read
    /// through the host root instead of `/proc/<pid>/root`: its `--config`
    /// (a ConfigMap volume) is found where the kubelet keeps that volume,
    /// via the mount tables ([`crate::mounts`]). `None` (fall back to
    /// `/proc/<pid>/root`) when kube-proxy shares the host's mounts, the
    /// tables cannot be read, or the config is not on a host filesystem.
    fn kube_proxy_through_host(&self, p: &Process, flags: &Flags) -> Option<ComponentFacts> {
        if p.host_mount_ns {
            return None;
        }
        let view = self.view_of(p)?;
        let config = flags
            .raw("config")
            .filter(|c| !c.is_empty())
            .map(config::absolute);
        let load_flags = match &config {
            Some(path) => {
                let on_host = view.host_path(path).filter(|h| self.host.exists(h))?;
                Flags::parse(&[format!("--config={on_host}")])
            }
            None => Flags::default(),
        };
        Some(ComponentFacts {
            pid: Some(p.pid),
            argv_source: format!("/proc/{}/cmdline", p.pid),
            flags: flags.clone(),
            config: load_config(self.host, &load_flags),
            flags_override_config: false,
            env: BTreeMap::new(),
            root: self.host.clone(),
            view: Some(view),
        })
    }
}

/// etcd's `--config-file` (RKE2 runs etcd with one); the other control
/// plane settings checked are flags only.
fn control_plane_config(component: Component, root: &HostRoot, flags: &Flags) -> ConfigState {
    if component == Component::Etcd {
        load_config_from(root, flags, "config-file", None)
    } else {
        ConfigState::NotUsed
    }
}

/// Loads `--config` and `--config-dir` of a component.
fn load_config(root: &HostRoot, flags: &Flags) -> ConfigState {
    load_config_from(root, flags, "config", Some("config-dir"))
}

/// Loads the config file named by `file_flag` and the drop-ins of
/// `dir_flag`.
fn load_config_from(
    root: &HostRoot,
    flags: &Flags,
    file_flag: &str,
    dir_flag: Option<&str>,
) -> ConfigState {
    let file = flags
        .raw(file_flag)
        .filter(|p| !p.is_empty())
        .map(config::absolute);
    let dir = dir_flag
        .and_then(|f| flags.raw(f))
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
