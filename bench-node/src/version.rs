//! The Kubernetes version, found without running anything.
//!
//! kube-bench asks the API server, then runs `kubectl`/`kubelet --version`,
//! then executes the first `kubelet` that `find /` turns up, and finally
//! falls back to 1.18 silently (#655). We never execute a binary found on
//! disk: the version comes from `--kubernetes-version`, from the Go build
//! information embedded in the kubelet binary (the `-X …gitVersion=` link
//! flag recorded in the `.go.buildinfo` section), from an RKE2 data
//! directory name, or from static pod image tags; otherwise it is unknown
//! and the report says so.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

/// The largest `.go.buildinfo` section we read; real ones are a few KiB.
const MAX_BUILDINFO: u64 = 1 << 20;

/// A Kubernetes version and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeVersion {
    /// e.g. `v1.31.4+k3s1` as found.
    pub git_version: String,
    pub major: u32,
    pub minor: u32,
    /// e.g. `kubelet build info /usr/bin/kubelet`.
    pub source: String,
}

impl KubeVersion {
    /// Parses `v1.31.4`, `1.31`, `v1.30.2-eks-1234`, `v1.30.2+rke2r1`.
    pub fn parse(text: &str, source: impl Into<String>) -> Option<KubeVersion> {
        let t = text.trim().trim_start_matches('v');
        let mut parts = t.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KubeVersion {
            git_version: text.trim().to_string(),
            major,
            minor,
            source: source.into(),
        })
    }

    pub fn minor_version(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

/// Parses `1.27` into `(1, 27)`.
pub fn parse_minor(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().trim_start_matches('v').split_once('.')?;
    Some((a.parse().ok()?, b.split('.').next()?.parse().ok()?))
}

/// Reads the Kubernetes `gitVersion` from a Go binary's build info.
/// `Ok(None)`: a readable binary without that information.
pub fn from_go_binary(path: &Path) -> std::io::Result<Option<String>> {
    Ok(go_modinfo(path)?.and_then(|modinfo| git_version_from_modinfo(&modinfo)))
}

/// The module information a Go ≥1.18 binary carries (what `go version -m`
/// prints), read from its `.go.buildinfo` section. `Ok(None)`: not a Go
/// binary, or one without inline build info.
pub fn go_modinfo(path: &Path) -> std::io::Result<Option<String>> {
    go_modinfo_of(&mut File::open(path)?)
}

/// [`go_modinfo`] of an open file (opened under the host root).
pub fn go_modinfo_of(file: &mut File) -> std::io::Result<Option<String>> {
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let Some(section) = read_elf_section(file, ".go.buildinfo")? else {
        return Ok(None);
    };
    Ok(parse_buildinfo(&section))
}

/// Extracts the `modinfo` string of a Go ≥1.18 `.go.buildinfo` section
/// (16-byte-aligned header `\xff Go buildinf:`, pointer size, flags; with
/// flag bit 2 the version and modinfo follow inline as varint-prefixed
/// strings).
pub fn parse_buildinfo(section: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if section.len() < 32 || !section.starts_with(MAGIC) {
        return None;
    }
    let flags = section[15];
    if flags & 0x2 == 0 {
        // Pre-1.18 layout with pointers into the data segment: not supported.
        return None;
    }
    let mut rest = &section[32..];
    let _go_version = read_varint_string(&mut rest)?;
    let modinfo = read_varint_string(&mut rest)?;
    Some(String::from_utf8_lossy(modinfo).into_owned())
}

fn read_varint_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, rest) = data.split_first()?;
        *data = rest;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    if len > data.len() {
        return None;
    }
    let (s, rest) = data.split_at(len);
    *data = rest;
    Some(s)
}

/// Finds `gitVersion=v…` in the recorded `-ldflags` (Kubernetes sets
/// `k8s.io/component-base/version.gitVersion`), else the main module's
/// version when it is a release (`mod k8s.io/kubernetes v1.31.4`).
pub fn git_version_from_modinfo(modinfo: &str) -> Option<String> {
    const KEY: &str = "version.gitVersion=";
    if let Some(at) = modinfo.find(KEY) {
        let value: String = modinfo[at + KEY.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '\'' && *c != '"')
            .collect();
        if value.starts_with('v') {
            return Some(value);
        }
    }
    modinfo.lines().find_map(|line| {
        let mut fields = line.split('\t');
        if fields.next()? != "mod" {
            return None;
        }
        let path = fields.next()?;
        let version = fields.next()?;
        (path.ends_with("k8s.io/kubernetes") && version.starts_with("v1."))
            .then(|| version.to_string())
    })
}

/// Reads one section of a 64-bit or 32-bit little-endian ELF file by name.
fn read_elf_section(file: &mut File, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut ident = [0u8; 64];
    file.read_exact(&mut ident)
        .map_err(|e| std::io::Error::new(e.kind(), format!("not an ELF file: {e}")))?;
    if &ident[..4] != b"\x7fELF" || ident[5] != 1 {
        return Ok(None); // not ELF, or big-endian
    }
    let is64 = ident[4] == 2;
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (
            u64_at(&ident, 0x28),
            u64::from(u16_at(&ident, 0x3a)),
            u64::from(u16_at(&ident, 0x3c)),
            u64::from(u16_at(&ident, 0x3e)),
        )
    } else {
        (
            u64::from(u32_at(&ident, 0x20)),
            u64::from(u16_at(&ident, 0x2e)),
            u64::from(u16_at(&ident, 0x30)),
            u64::from(u16_at(&ident, 0x32)),
        )
    };
    // Real section headers are 40 (ELF32) or 64 (ELF64) bytes; bounding
    // both numbers bounds what a hostile file can make us allocate.
    if shoff == 0
        || shnum == 0
        || shnum > 4096
        || !(40..=256).contains(&shentsize)
        || shstrndx >= shnum
    {
        return Ok(None);
    }
    let mut table = vec![0u8; usize::try_from(shentsize * shnum).unwrap_or(0)];
    file.seek(SeekFrom::Start(shoff))?;
    file.read_exact(&mut table)?;
    let entry = |i: u64| -> (u32, u64, u64) {
        let o = usize::try_from(i * shentsize).unwrap_or(0);
        let e = &table[o..];
        if is64 {
            (u32_at(e, 0), u64_at(e, 0x18), u64_at(e, 0x20))
        } else {
            (
                u32_at(e, 0),
                u64::from(u32_at(e, 0x10)),
                u64::from(u32_at(e, 0x14)),
            )
        }
    };
    let (_, str_off, str_size) = entry(shstrndx);
    let names = read_at(file, str_off, str_size.min(MAX_BUILDINFO))?;
    for i in 0..shnum {
        let (name_off, off, size) = entry(i);
        let start = usize::try_from(name_off).unwrap_or(usize::MAX);
        let Some(tail) = names.get(start..) else {
            continue;
        };
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if &tail[..end] == name.as_bytes() {
            return read_at(file, off, size.min(MAX_BUILDINFO)).map(Some);
        }
    }
    Ok(None)
}

fn read_at(file: &mut File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The version in an RKE2 binary path:
/// `/var/lib/rancher/rke2/data/v1.30.2-rke2r1-1a2b3c/bin/kubelet`.
pub fn from_rke2_path(path: &str) -> Option<String> {
    let at = path.find("/rke2/data/v")?;
    let rest = &path[at + "/rke2/data/".len()..];
    let dir = rest.split('/').next()?;
    let end = dir.find("-rke2r").map(|i| {
        let after = &dir[i + 6..];
        i + 6 + after.find('-').unwrap_or(after.len())
    })?;
    Some(dir[..end].to_string())
}

/// The `kubelet` package's version in a dpkg status file (kubeadm nodes
/// install the kubelet from pkgs.k8s.io): `1.31.4-1.1` → `v1.31.4`.
pub fn from_dpkg_status(status: &str) -> Option<String> {
    let mut in_kubelet = false;
    for line in status.lines() {
        if line.is_empty() {
            in_kubelet = false;
        } else if let Some(name) = line.strip_prefix("Package: ") {
            in_kubelet = name.trim() == "kubelet";
        } else if let (true, Some(v)) = (in_kubelet, line.strip_prefix("Version: ")) {
            let upstream = v.trim().split(':').next_back()?.split('-').next()?;
            return KubeVersion::parse(upstream, "").map(|_| format!("v{upstream}"));
        }
    }
    None
}

/// The tag of a Kubernetes image: `registry.k8s.io/kube-apiserver:v1.31.4`.
pub fn from_image(image: &str) -> Option<String> {
    let (_, tag) = image.rsplit_once(':')?;
    let tag = tag.split('@').next()?;
    (tag.starts_with("v1.") && KubeVersion::parse(tag, "").is_some()).then(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a Go ≥1.18 `.go.buildinfo` section.
    pub(crate) fn buildinfo(modinfo: &str) -> Vec<u8> {
        let mut s = b"\xff Go buildinf:".to_vec();
        s.push(8); // pointer size
        s.push(2); // flags: inline strings
        s.resize(32, 0);
        for text in ["go1.22.5", modinfo] {
            let mut len = text.len();
            loop {
                let mut byte = u8::try_from(len & 0x7f).unwrap();
                len >>= 7;
                if len > 0 {
                    byte |= 0x80;
                }
                s.push(byte);
                if len == 0 {
                    break;
                }
            }
            s.extend_from_slice(text.as_bytes());
        }
        s
    }

    #[test]
    fn reads_git_version_from_ldflags() {
        let modinfo = "0w\u{af}\u{c}\u{92}t\u{8}\u{2}A\u{e1}\u{c1}\u{7}\u{e6}\u{d6}\u{18}\u{e6}path\tk8s.io/kubernetes/cmd/kubelet\nmod\tk8s.io/kubernetes\t(devel)\t\nbuild\t-ldflags=\"-X 'k8s.io/component-base/version.gitVersion=v1.31.4' -X 'k8s.io/component-base/version.gitMajor=1'\"\n";
        let section = buildinfo(modinfo);
        let parsed = parse_buildinfo(&section).unwrap();
        assert_eq!(
            git_version_from_modinfo(&parsed).as_deref(),
            Some("v1.31.4")
        );
    }

    #[test]
    fn long_modinfo_uses_multibyte_varint() {
        let modinfo = format!(
            "{}\nbuild\t-ldflags=-X k8s.io/component-base/version.gitVersion=v1.30.2+k3s1\n",
            "x".repeat(300)
        );
        let parsed = parse_buildinfo(&buildinfo(&modinfo)).unwrap();
        assert_eq!(
            git_version_from_modinfo(&parsed).as_deref(),
            Some("v1.30.2+k3s1")
        );
    }

    #[test]
    fn hostile_elf_headers_are_rejected_without_huge_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet");
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x28..0x30].copy_from_slice(&64u64.to_le_bytes()); // shoff
        elf[0x3a..0x3c].copy_from_slice(&u16::MAX.to_le_bytes()); // shentsize
        elf[0x3c..0x3e].copy_from_slice(&4000u16.to_le_bytes()); // shnum
        std::fs::write(&path, &elf).unwrap();
        assert_eq!(from_go_binary(&path).unwrap(), None);
        // Truncated section table: an error, not a panic.
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        std::fs::write(&path, &elf).unwrap();
        assert!(from_go_binary(&path).is_err());
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        assert!(from_go_binary(&path).is_err());
    }

    #[test]
    fn garbage_is_not_a_version() {
        assert_eq!(parse_buildinfo(b"\xff Go buildinf:"), None);
        assert_eq!(parse_buildinfo(&[0u8; 64]), None);
        let mut truncated = buildinfo("mod\tk8s.io/kubernetes\tv1.31.0\t");
        truncated.truncate(40);
        assert_eq!(parse_buildinfo(&truncated), None);
        assert_eq!(
            git_version_from_modinfo("mod\tk8s.io/kubernetes\t(devel)\t"),
            None
        );
    }

    #[test]
    fn versions_from_paths_and_images() {
        assert_eq!(
            from_rke2_path("/var/lib/rancher/rke2/data/v1.30.2-rke2r1-1a2b3c/bin/kubelet")
                .as_deref(),
            Some("v1.30.2-rke2r1")
        );
        assert_eq!(from_rke2_path("/usr/bin/kubelet"), None);
        assert_eq!(
            from_image("registry.k8s.io/kube-apiserver:v1.31.4").as_deref(),
            Some("v1.31.4")
        );
        assert_eq!(from_image("registry:5000/kube-apiserver:latest"), None);
        let v = KubeVersion::parse("v1.30.2-eks-1234", "x").unwrap();
        assert_eq!((v.major, v.minor), (1, 30));
        assert_eq!(parse_minor("1.27"), Some((1, 27)));
        let status = "Package: kubectl\nStatus: install ok installed\nVersion: 1.30.0-1.1\n\nPackage: kubelet\nStatus: install ok installed\nVersion: 1.31.4-1.1\n";
        assert_eq!(from_dpkg_status(status).as_deref(), Some("v1.31.4"));
        assert_eq!(
            from_dpkg_status("Package: kubelet-extra\nVersion: 1.0\n"),
            None
        );
    }

    #[test]
    fn reads_the_build_info_of_a_real_go_binary() {
        // promtool (Debian's prometheus package, installed by the CI setup)
        // is a Go binary with real build info.
        let Some(promtool) = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            eprintln!("SKIPPED (promtool not installed): real Go build info");
            return;
        };
        let modinfo = go_modinfo(promtool).unwrap().expect("Go build info");
        assert!(
            modinfo.contains("path\tgithub.com/prometheus/prometheus/cmd/promtool"),
            "{modinfo}"
        );
        // It is not a Kubernetes binary: no version is made up.
        assert_eq!(from_go_binary(promtool).unwrap(), None);
    }

    #[test]
    fn reads_a_real_elf_without_buildinfo() {
        // The test binary itself is an ELF file built by rustc: no Go info.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(from_go_binary(&exe).unwrap(), None);
    }
}
