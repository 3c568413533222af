//! Component config files (KubeletConfiguration, KubeProxyConfiguration),
//! with `--config-dir` drop-ins, read as layers.
//!
//! The kubelet applies, lowest first: built-in defaults, the `--config`
//! file, the `--config-dir` drop-ins (`*.conf`, in lexical order, since
//! 1.28), then command-line flags. A key is looked up from the top layer
//! down, which is the same as merging the maps and replacing lists, as the
//! kubelet does.

use std::path::Path;

use nodeguard_common::hostroot::HostRoot;
use serde_json::Value as Json;

/// The largest config file we parse.
const MAX_CONFIG: u64 = 4 << 20;

/// One parsed config file.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Host path, as the component names it.
    pub path: String,
    pub doc: Json,
}

/// The config files of a component, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub layers: Vec<Layer>,
}

impl Layers {
    /// Looks up a dotted key (`authentication.anonymous.enabled`) from the
    /// top layer down. Empty strings count as absent: the components'
    /// defaulting replaces them (e.g. kube-proxy's `metricsBindAddress: ""`).
    pub fn lookup(&self, key: &str) -> Option<(&Json, &str)> {
        self.layers.iter().rev().find_map(|layer| {
            let value = key
                .split('.')
                .try_fold(&layer.doc, |node, part| node.get(part))?;
            match value {
                Json::Null => None,
                Json::String(s) if s.is_empty() => None,
                v => Some((v, layer.path.as_str())),
            }
        })
    }

    pub fn paths(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.path.clone()).collect()
    }
}

/// Reads and parses one YAML or JSON config file. The error names the path
/// and, for a symlink that resolved somewhere unexpected, where it went.
pub fn load_file(root: &HostRoot, path: &str) -> Result<Layer, String> {
    let bytes = root
        .read_limited(path, MAX_CONFIG)
        .map_err(|e| explain_read_error(root, path, &e))?;
    let doc = parse_document(&bytes).map_err(|e| format!("{path}: {e}"))?;
    Ok(Layer {
        path: path.to_string(),
        doc,
    })
}

/// Parses YAML (JSON is YAML) into a JSON value; the top level must be a
/// mapping.
pub fn parse_document(bytes: &[u8]) -> Result<Json, String> {
    let doc: Json = serde_norway::from_slice(bytes).map_err(|e| format!("invalid YAML: {e}"))?;
    match doc {
        Json::Object(_) => Ok(doc),
        Json::Null => Ok(Json::Object(serde_json::Map::new())),
        _ => Err("not a YAML mapping".to_string()),
    }
}

/// The drop-ins of a `--config-dir`: `*.conf` files, lexical order, as
/// host paths. A missing directory has none.
pub fn drop_in_paths(root: &HostRoot, dir: &str) -> Vec<String> {
    let Ok(real) = root.resolve(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&real) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|name| format!("{}/{name}", dir.trim_end_matches('/')))
        .collect()
}

/// Loads the drop-ins of a `--config-dir`.
pub fn load_drop_ins(root: &HostRoot, dir: &str) -> Result<Vec<Layer>, String> {
    if let Ok(real) = root.resolve(dir) {
        if let Err(e) = std::fs::read_dir(&real) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(format!("{dir}: {e}"));
            }
        }
    }
    drop_in_paths(root, dir)
        .iter()
        .map(|path| load_file(root, path))
        .collect()
}

/// Turns a read error into a message; says where a symlink led when the
/// target is missing inside the root (an absolute link is re-rooted at the
/// host root, never followed into this container's own files).
pub fn explain_read_error(root: &HostRoot, path: &str, err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::NotFound {
        if let Ok(target) = std::fs::read_link(root.join(path)) {
            let resolved = root
                .resolve(path)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return format!(
                "{path} is a symlink to {} which does not exist inside the host root (resolved to {resolved}); links are never followed out of the host root",
                target.display()
            );
        }
    }
    err.to_string()
}

/// A path relative to `/` if the component gave a relative one (its working
/// directory is `/` under systemd).
pub fn absolute(path: &str) -> String {
    if Path::new(path).is_absolute() {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_layer_wins_and_maps_merge() {
        let layers = Layers {
            layers: vec![
                Layer {
                    path: "/base".into(),
                    doc: serde_json::json!({"readOnlyPort": 10255, "featureGates": {"A": true}}),
                },
                Layer {
                    path: "/drop-in".into(),
                    doc: serde_json::json!({"readOnlyPort": 0, "featureGates": {"B": false}}),
                },
            ],
        };
        assert_eq!(
            layers.lookup("readOnlyPort"),
            Some((&serde_json::json!(0), "/drop-in"))
        );
        assert_eq!(
            layers.lookup("featureGates.A"),
            Some((&serde_json::json!(true), "/base"))
        );
        assert_eq!(layers.lookup("missing.key"), None);
    }

    #[test]
    fn empty_strings_are_absent() {
        let layers = Layers {
            layers: vec![Layer {
                path: "/p".into(),
                doc: serde_json::json!({"metricsBindAddress": ""}),
            }],
        };
        assert_eq!(layers.lookup("metricsBindAddress"), None);
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(parse_document(b"a: [unclosed").is_err());
        assert!(parse_document(b"- just\n- a list\n").is_err());
        assert!(parse_document(b"{\"json\": true}").is_ok());
        assert!(parse_document(b"").is_ok());
    }
}
