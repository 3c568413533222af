//! Writes the seeds that are not committed under `fuzz/seeds/`: inputs
//! taken out of the repository's fixtures (and the shared real-format
//! fixtures when present), and generated ones such as fim-check baselines
//! in the current format.
//!
//! `seeds OUT REPO [SHARED_FIXTURES]` writes `OUT/<target>/<name>` files;
//! `tests/fuzz.sh` runs it before fuzzing.

// Linked for its coverage callbacks: this binary is built with the same
// instrumentation as the targets.
use libfuzzer_sys as _;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use detect_host::legacy::{LegacyFormat, LEGACY_FILES};

use fim_check::attrs::builtin_group;
use fim_check::baseline::{Header, Writer};
use fim_check::entry::{Entry, FileType, Timestamp};

/// The key `fuzz_targets/fim_baseline.rs` opens keyed seeds with.
const KEY: &[u8] = b"nodeguard-fuzz-key";

fn entry(path: &str, ftype: FileType, group: &str) -> Entry {
    let attrs = builtin_group(group).unwrap_or_default();
    let mut e = Entry::new(path.as_bytes().to_vec(), ftype, attrs);
    e.perm = 0o644;
    e.uid = 0;
    e.gid = 0;
    e.size = 4096;
    e.mtime = Timestamp {
        sec: 1_700_000_000,
        nsec: 5,
    };
    e.ctime = e.mtime;
    e.inode = 42;
    e.links = 1;
    if ftype == FileType::Regular {
        e.sha256 = Some([7; 32]);
        e.xattrs = vec![(
            b"security.selinux".to_vec(),
            b"system_u:object_r:etc_t:s0".to_vec(),
        )];
    }
    if ftype == FileType::Symlink {
        e.link_target = b"../usr/lib/os-release".to_vec();
    }
    e
}

fn baseline(key: Option<&[u8]>, entries: &[Entry]) -> io::Result<Vec<u8>> {
    let header = Header {
        tool_version: "0.1.0".to_owned(),
        created_at: "2026-01-01T00:00:00Z".to_owned(),
        node: "node-1".to_owned(),
        config_source: "builtin".to_owned(),
        config_digest: "0".repeat(64),
        limits: vec!["/etc".to_owned()],
        authenticated: key.is_some(),
    };
    let mut writer = Writer::new(Vec::new(), &header, key)?;
    for e in entries {
        writer.write(e)?;
    }
    Ok(writer.finish()?.0)
}

/// The fuzz target's selector byte for a legacy release file.
fn legacy_selector(format: LegacyFormat) -> u8 {
    match format {
        LegacyFormat::ReleaseLine => 0,
        LegacyFormat::Suse => 1,
        LegacyFormat::Lsb => 2,
        LegacyFormat::Alpine => 3,
        LegacyFormat::DebianVersion => 4,
    }
}

/// Release files by their host path (`etc/os-release`, `etc/lsb-release`,
/// …): `None` for os-release, the legacy format otherwise.
fn release_kind(host_path: &str) -> Option<Option<LegacyFormat>> {
    let path = host_path.trim_start_matches('/');
    if path == "etc/os-release" || path == "usr/lib/os-release" {
        return Some(None);
    }
    LEGACY_FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|&(_, format)| Some(format))
}

struct Out {
    dir: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir)?;
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.count += 1;
        fs::write(dir.join(name), bytes)
    }

    fn release_file(&mut self, host_path: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        match release_kind(host_path) {
            Some(None) => self.put("detect_os_release", name, bytes),
            Some(Some(format)) => {
                let mut input = vec![legacy_selector(format)];
                input.extend_from_slice(bytes);
                self.put("detect_legacy", name, &input)
            }
            None => Ok(()),
        }
    }

    /// Every file of `dir` (not recursive) whose name ends in `suffix`.
    fn files(&mut self, target: &str, dir: &Path, suffix: &str) -> io::Result<()> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) && entry.file_type()?.is_file() {
                let tag = dir
                    .file_name()
                    .map_or_else(String::new, |d| d.to_string_lossy().into_owned());
                self.put(target, &format!("{tag}-{name}"), &fs::read(entry.path())?)?;
            }
        }
        Ok(())
    }
}

/// Every regular file below `dir`, as (path relative to `dir`, path).
fn walk(dir: &Path, rel: &str, found: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&entry.path(), &rel, found),
            Ok(t) if t.is_file() => found.push((rel, entry.path())),
            _ => {}
        }
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(dir), Some(repo)) = (args.next(), args.next()) else {
        eprintln!("usage: seeds OUT REPO [SHARED_FIXTURES]");
        std::process::exit(2);
    };
    let shared = args.next();
    let mut out = Out { dir, count: 0 };

    // detect-host: each fixture root's release files.
    let detect = repo.join("tests/fixtures/detect-host");
    let mut found = Vec::new();
    walk(&detect, "", &mut found);
    for (rel, path) in &found {
        if let Some((case, inside)) = rel.split_once("/rootfs/") {
            let bytes = fs::read(path)?;
            out.release_file(inside, &format!("{case}-{inside}"), &bytes)?;
            if inside.starts_with("etc/kubernetes/") {
                out.put("bench_config", &format!("{case}-{inside}"), &bytes)?;
            }
        }
    }
    out.files(
        "detect_os_release",
        &repo.join("tests/fixtures/install-agent/os-release"),
        ".os-release",
    )?;

    out.files(
        "agent_profile",
        &repo.join("install-agent/profiles"),
        ".toml",
    )?;
    out.files(
        "agent_profile",
        &repo.join("tests/fixtures/install-agent"),
        ".toml.in",
    )?;
    out.put(
        "fim_policy",
        "default-policy.toml",
        &fs::read(repo.join("fim-check/src/default-policy.toml"))?,
    )?;
    for runtime in ["containerd", "crio"] {
        out.files(
            "scan_crictl",
            &repo.join("tests/fixtures/scan-images/crictl").join(runtime),
            ".json",
        )?;
    }
    for suffix in [".jsonl", ".log"] {
        out.files(
            "cluster_jsonl",
            &repo.join("tests/fixtures/cluster-report/logs"),
            suffix,
        )?;
    }

    if let Some(shared) = shared {
        out.files("scan_trivy_report", &shared.join("trivy"), ".json")?;
        // kube-bench's JSON: a large real-world JSON document for the YAML reader.
        out.files("bench_config", &shared.join("kube-bench"), ".json")?;
        // Ansible's distribution tests: every release file they hold.
        let ansible = shared.join("os-release/ansible");
        if let Ok(entries) = fs::read_dir(&ansible) {
            for entry in entries.filter_map(Result::ok) {
                let case = entry.file_name().to_string_lossy().into_owned();
                let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&fs::read(entry.path())?)
                else {
                    continue;
                };
                let Some(input) = doc.get("input").and_then(serde_json::Value::as_object) else {
                    continue;
                };
                for (host_path, body) in input {
                    if let Some(text) = body.as_str() {
                        out.release_file(
                            host_path,
                            &format!("{case}-{host_path}"),
                            text.as_bytes(),
                        )?;
                    }
                }
            }
        }
    }

    // fim-check: baselines in the current format. The target's first
    // byte: even = no key, odd = KEY.
    let entries = [
        entry("/etc", FileType::Directory, "perms"),
        entry("/etc/os-release", FileType::Symlink, "perms"),
        entry("/etc/passwd", FileType::Regular, "content"),
        entry("/etc/shadow", FileType::Regular, "content"),
        entry("/etc/ssl/\u{e9}t\u{e9}", FileType::Regular, "content"),
    ];
    for (name, key, count) in [
        ("plain-empty", None, 0),
        ("plain", None, entries.len()),
        ("keyed", Some(KEY), entries.len()),
        ("keyed-one", Some(KEY), 1),
    ] {
        let mut bytes = vec![u8::from(key.is_some())];
        bytes.extend(baseline(key, entries.get(..count).unwrap_or_default())?);
        out.put("fim_baseline", &format!("gen-{name}"), &bytes)?;
    }
    println!("{} seeds written to {}", out.count, out.dir.display());
    Ok(())
}
