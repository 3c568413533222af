//! Choosing the CRI socket. crictl's own fallback list is slow (a connect
//! timeout per miss), logs a deprecation warning and knows neither k3s nor
//! a host root, so the socket is probed here and always passed with `-r`.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use nodeguard_common::HostRoot;
use serde::Serialize;

/// Which runtime serves a socket; decides how Trivy reaches the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// containerd (also k3s/RKE2's embedded one): Trivy reads its store.
    Containerd,
    /// CRI-O: Trivy cannot read its store; running roots are scanned.
    CriO,
    /// cri-dockerd: Trivy reads the Docker engine.
    Docker,
}

impl RuntimeKind {
    /// From `crictl version`'s RuntimeName.
    pub fn from_runtime_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        if name.contains("containerd") {
            Some(Self::Containerd)
        } else if name.contains("cri-o") || name.contains("crio") {
            Some(Self::CriO)
        } else if name.contains("docker") {
            Some(Self::Docker)
        } else {
            None
        }
    }
}

/// Known sockets in probe order (host paths).
pub const CANDIDATES: &[(&str, RuntimeKind)] = &[
    ("/run/containerd/containerd.sock", RuntimeKind::Containerd),
    ("/run/crio/crio.sock", RuntimeKind::CriO),
    (
        "/run/k3s/containerd/containerd.sock",
        RuntimeKind::Containerd,
    ),
    ("/run/cri-dockerd.sock", RuntimeKind::Docker),
    ("/var/run/cri-dockerd.sock", RuntimeKind::Docker),
];

/// A chosen endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `unix://<path>` as passed to crictl.
    pub url: String,
    /// The socket's path as seen by this process (inside the host root).
    pub socket: PathBuf,
    /// The runtime guessed from the path; replaced by `crictl version`'s
    /// answer when that names a known runtime.
    pub kind: Option<RuntimeKind>,
}

impl Endpoint {
    /// An endpoint given with `--runtime-endpoint` (`unix://` optional).
    pub fn from_flag(value: &str) -> Result<Self> {
        let path = value.strip_prefix("unix://").unwrap_or(value);
        if value.contains("://") && !value.starts_with("unix://") {
            bail!("--runtime-endpoint {value:?}: only unix:// sockets are supported");
        }
        if path.is_empty() {
            bail!("--runtime-endpoint is empty");
        }
        let kind = CANDIDATES
            .iter()
            .find(|(p, _)| path.ends_with(p.trim_start_matches("/var")))
            .map(|(_, k)| *k);
        Ok(Self {
            url: format!("unix://{path}"),
            socket: PathBuf::from(path),
            kind,
        })
    }
}

/// The first candidate socket that exists under the host root. The error
/// lists every path tried.
pub fn discover(host: &HostRoot) -> Result<Endpoint> {
    let mut tried = Vec::new();
    for (path, kind) in CANDIDATES {
        let resolved = host.resolve(path).unwrap_or_else(|_| host.join(path));
        if is_socket(&resolved) {
            return Ok(Endpoint {
                url: format!("unix://{}", resolved.display()),
                socket: resolved,
                kind: Some(*kind),
            });
        }
        tried.push(resolved.display().to_string());
    }
    bail!(
        "no container runtime socket found (tried {}); pass --runtime-endpoint",
        tried.join(", ")
    )
}

fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn probes_in_order_under_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::open(dir.path()).unwrap();
        let err = discover(&host).unwrap_err().to_string();
        assert!(err.contains("run/containerd/containerd.sock"), "{err}");
        assert!(err.contains("--runtime-endpoint"), "{err}");

        std::fs::create_dir_all(dir.path().join("run/k3s/containerd")).unwrap();
        let _k3s =
            UnixListener::bind(dir.path().join("run/k3s/containerd/containerd.sock")).unwrap();
        let found = discover(&host).unwrap();
        assert_eq!(found.kind, Some(RuntimeKind::Containerd));
        assert!(
            found.url.ends_with("/run/k3s/containerd/containerd.sock"),
            "{}",
            found.url
        );
        assert!(found.socket.starts_with(host.path()));

        std::fs::create_dir_all(dir.path().join("run/crio")).unwrap();
        let _crio = UnixListener::bind(dir.path().join("run/crio/crio.sock")).unwrap();
        assert_eq!(
            discover(&host).unwrap().kind,
            Some(RuntimeKind::CriO),
            "CRI-O comes before k3s"
        );
    }

    #[test]
    fn a_regular_file_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run/containerd")).unwrap();
        std::fs::write(dir.path().join("run/containerd/containerd.sock"), "").unwrap();
        let host = HostRoot::open(dir.path()).unwrap();
        assert!(discover(&host).is_err());
    }

    #[test]
    fn flag_values_with_and_without_scheme() {
        let e = Endpoint::from_flag("/run/crio/crio.sock").unwrap();
        assert_eq!(e.url, "unix:///run/crio/crio.sock");
        assert_eq!(e.kind, Some(RuntimeKind::CriO));
        let e = Endpoint::from_flag("unix:///tmp/x.sock").unwrap();
        assert_eq!(e.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(e.kind, None);
        assert!(Endpoint::from_flag("tcp://1.2.3.4:1").is_err());
        assert!(Endpoint::from_flag("unix://").is_err());
    }

    #[test]
    fn runtime_names_map_to_kinds() {
        assert_eq!(
            RuntimeKind::from_runtime_name("containerd"),
            Some(RuntimeKind::Containerd)
        );
        assert_eq!(
            RuntimeKind::from_runtime_name("cri-o"),
            Some(RuntimeKind::CriO)
        );
        assert_eq!(
            RuntimeKind::from_runtime_name("docker"),
            Some(RuntimeKind::Docker)
        );
        assert_eq!(RuntimeKind::from_runtime_name("mystery"), None);
    }
}
