//! Which files each check role means on this node.

use std::collections::BTreeMap;

use nodeguard_common::hostroot::HostRoot;
use serde_json::Value as Json;

use super::{ComponentFacts, ConfigState, Gatherer};
use crate::config;
use crate::definitions::{Component, FileRole};
use crate::files::{self, FileSet, Source};
use crate::layout::UNIT_DIRS;
use crate::procs;

impl Gatherer<'_> {
    pub(super) fn file_role(
        &self,
        role: FileRole,
        comps: &BTreeMap<Component, ComponentFacts>,
    ) -> FileSet {
        let kubelet = comps.get(&Component::Kubelet);
        match role {
            FileRole::KubeletUnit => self.kubelet_unit(),
            FileRole::KubeletKubeconfig => self.kubelet_kubeconfig(kubelet),
            FileRole::KubeletConfig => self.kubelet_config(kubelet),
            FileRole::KubeletClientCa => self.kubelet_client_ca(kubelet),
            FileRole::ProxyKubeconfig => self.proxy_kubeconfig(comps.get(&Component::KubeProxy)),
            FileRole::ApiserverManifest => self.manifest("kube-apiserver"),
            FileRole::ControllerManagerManifest => self.manifest("kube-controller-manager"),
            FileRole::SchedulerManifest => self.manifest("kube-scheduler"),
            FileRole::EtcdManifest => self.manifest("etcd"),
            FileRole::CniConfig => {
                let dir = self.layout.cni_dir();
                let list = files::list_dir(self.host, dir, 0);
                files::existing(
                    self.host,
                    &list,
                    Source::Default,
                    dir,
                    "CNI configuration file",
                )
            }
            FileRole::EtcdDataDir => self.etcd_data_dir(comps.get(&Component::Etcd)),
            FileRole::AdminKubeconfig => {
                self.layout_default(self.layout.admin_kubeconfigs(), "administrative kubeconfig")
            }
            FileRole::SchedulerKubeconfig => component_kubeconfig(
                self.host,
                comps.get(&Component::KubeScheduler),
                "/etc/kubernetes/scheduler.conf",
                "kube-scheduler",
            ),
            FileRole::ControllerManagerKubeconfig => component_kubeconfig(
                self.host,
                comps.get(&Component::KubeControllerManager),
                "/etc/kubernetes/controller-manager.conf",
                "kube-controller-manager",
            ),
            FileRole::PkiTree | FileRole::PkiCerts | FileRole::PkiKeys => self.pki(role),
        }
    }

    /// The existing ones of the layout's default paths.
    fn layout_default(&self, paths: &[&str], what: &str) -> FileSet {
        let candidates: Vec<String> = paths.iter().map(|p| (*p).to_string()).collect();
        files::existing(
            self.host,
            &candidates,
            Source::Default,
            format!("{} layout", self.layout.name()),
            what,
        )
    }

    fn kubelet_kubeconfig(&self, kubelet: Option<&ComponentFacts>) -> FileSet {
        match kubelet.and_then(|k| k.flags.raw("kubeconfig")) {
            Some(p) if !p.is_empty() => files::existing(
                &kubelet_root(kubelet, self.host),
                &[config::absolute(p)],
                Source::Flag,
                "kubelet --kubeconfig",
                "kubelet kubeconfig",
            ),
            _ => self.layout_default(self.layout.kubelet_kubeconfig(), "kubelet kubeconfig"),
        }
    }

    fn kubelet_config(&self, kubelet: Option<&ComponentFacts>) -> FileSet {
        let paths = match kubelet.map(|k| &k.config) {
            Some(ConfigState::Loaded(layers)) => layers.paths(),
            // A file that does not parse still has a mode and an owner.
            Some(ConfigState::Failed { paths, .. }) => paths.clone(),
            Some(ConfigState::NotUsed) => {
                return FileSet::Absent("the kubelet runs without a config file (--config)".into())
            }
            None => {
                return self.layout_default(self.layout.kubelet_config(), "kubelet config file")
            }
        };
        files::existing(
            &kubelet_root(kubelet, self.host),
            &paths,
            Source::Flag,
            "kubelet --config / --config-dir",
            "kubelet config file",
        )
    }

    fn manifest(&self, name: &str) -> FileSet {
        let path = format!("{}/{name}.yaml", self.layout.manifest_dir());
        files::existing(
            self.host,
            &[path],
            Source::Default,
            format!("{} layout", self.layout.name()),
            &format!("{name} static pod manifest"),
        )
    }

    fn etcd_data_dir(&self, etcd: Option<&ComponentFacts>) -> FileSet {
        let from_config = etcd.and_then(|e| match &e.config {
            ConfigState::Loaded(layers) => layers
                .lookup("data-dir")
                .and_then(|(v, _)| v.as_str().map(str::to_string)),
            _ => None,
        });
        let flagged = from_config.or_else(|| {
            etcd.and_then(|e| {
                e.flags
                    .raw("data-dir")
                    .map(str::to_string)
                    .or_else(|| e.env.get("ETCD_DATA_DIR").cloned())
            })
        });
        match flagged {
            Some(dir) => files::existing(
                self.host,
                &[dir],
                Source::Flag,
                "etcd --data-dir",
                "etcd data directory",
            ),
            None if etcd.is_some() => {
                self.layout_default(&[self.layout.etcd_data_dir()], "etcd data directory")
            }
            None => FileSet::Absent("etcd does not run on this node".into()),
        }
    }

    fn pki(&self, role: FileRole) -> FileSet {
        let dir = self.layout.pki_dir();
        if !self.host.exists(dir) {
            return FileSet::Absent(format!("no PKI directory {dir}"));
        }
        let mut list = files::list_dir(self.host, dir, 3);
        match role {
            FileRole::PkiTree => list.insert(0, dir.to_string()),
            FileRole::PkiCerts => list.retain(|p| p.ends_with(".crt")),
            _ => list.retain(|p| p.ends_with(".key")),
        }
        files::existing(self.host, &list, Source::Default, dir, "PKI file")
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
                Source::Process,
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
                    &[p.path_under_root(&config::absolute(&path))],
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
