//! File facts: which files a check role means on this node, and their
//! mode and owner, read with `stat` under the host root (no `stat(1)`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use nodeguard_common::hostroot::HostRoot;
use serde::Serialize;

/// Where a path (or a setting's value) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The component's command line (or a static pod manifest's command).
    Flag,
    /// The component's config file or drop-ins.
    Config,
    /// An environment variable of the process (etcd's `ETCD_*`).
    Env,
    /// The component's built-in default, or the layout's default path.
    Default,
    /// The running process itself (its systemd unit, from its cgroup).
    Process,
}

/// The files behind a check role.
#[derive(Debug, Clone)]
pub enum FileSet {
    /// The files to audit (at least one).
    Files {
        files: Vec<FileFact>,
        source: Source,
        /// e.g. `--kubeconfig of kubelet pid 812`, `kubeadm layout`.
        detail: String,
    },
    /// The node has no such file; the check does not apply.
    Absent(String),
    /// The location could not be determined (e.g. a malformed config).
    Error(String),
}

/// One file and its stat result.
#[derive(Debug, Clone)]
pub struct FileFact {
    /// Host path.
    pub path: String,
    pub stat: Result<FileStat, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub is_dir: bool,
}

/// Stats a host path, following links inside the root.
pub fn stat(root: &HostRoot, path: &str) -> FileFact {
    let stat = root
        .metadata(path)
        .map(|m| FileStat {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            is_dir: m.is_dir(),
        })
        .map_err(|e| crate::config::explain_read_error(root, path, &e));
    FileFact {
        path: path.to_string(),
        stat,
    }
}

/// Builds a set from candidate paths: the ones that exist, or `Absent`
/// naming what was looked for.
pub fn existing(
    root: &HostRoot,
    candidates: &[String],
    source: Source,
    detail: impl Into<String>,
    what: &str,
) -> FileSet {
    let files: Vec<FileFact> = candidates
        .iter()
        .filter(|p| root.exists(p.as_str()))
        .map(|p| stat(root, p))
        .collect();
    if files.is_empty() {
        if candidates.is_empty() {
            return FileSet::Absent(format!("no {what} on this node"));
        }
        // A dangling symlink is not "absent": say where it points.
        for p in candidates {
            if root.symlink_metadata(p.as_str()).is_ok() {
                return FileSet::Error(crate::config::explain_read_error(
                    root,
                    p,
                    &std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
        }
        return FileSet::Absent(format!(
            "no {what} on this node (looked for {})",
            candidates.join(", ")
        ));
    }
    FileSet::Files {
        files,
        source,
        detail: detail.into(),
    }
}

/// Lists a directory's entries under the host root, sorted; recursive to
/// `depth` levels. Missing directory: empty.
pub fn list_dir(root: &HostRoot, dir: &str, depth: usize) -> Vec<String> {
    let Ok(real) = root.resolve(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&real) else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            e.file_name().to_str().map(|n| (n.to_string(), is_dir))
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (name, is_dir) in names {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        if is_dir && depth > 0 {
            out.push(path.clone());
            out.extend(list_dir(root, &path, depth - 1));
        } else if !is_dir {
            out.push(path);
        }
    }
    out
}

/// User and group names of the host (`/etc/passwd`, `/etc/group` under the
/// root), so `root:root` and `etcd:etcd` mean the host's accounts.
#[derive(Debug, Default)]
pub struct Accounts {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Accounts {
    pub fn load(root: &HostRoot) -> Accounts {
        let table = |path: &str| -> HashMap<u32, String> {
            root.read_limited(path, 8 << 20)
                .map(|b| parse_id_table(&String::from_utf8_lossy(&b)))
                .unwrap_or_default()
        };
        Accounts {
            users: table("/etc/passwd"),
            groups: table("/etc/group"),
        }
    }

    pub fn user_name(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or_else(|| {
            if uid == 0 {
                "root".into()
            } else {
                uid.to_string()
            }
        })
    }

    pub fn group_name(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or_else(|| {
            if gid == 0 {
                "root".into()
            } else {
                gid.to_string()
            }
        })
    }
}

/// `name:x:id:...` lines into id → name (first name wins).
fn parse_id_table(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(id) = id.parse() {
            map.entry(id).or_insert_with(|| name.to_string());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_tables() {
        let t = parse_id_table("root:x:0:0:root:/root:/bin/sh\netcd:x:998:998::/var/lib/etcd:/sbin/nologin\nbad line\n");
        assert_eq!(t.get(&998).map(String::as_str), Some("etcd"));
        assert_eq!(t.get(&0).map(String::as_str), Some("root"));
        assert_eq!(t.len(), 2);
    }
}
