//! Fixture nodes: a host root built by the test, with a fake `/proc`,
//! config files of real-world shape, and modes and owners set here.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use crate::harness::{self, RunResult, TestDir};

/// The mount namespace every host process shares in fixtures.
pub const HOST_MNT_NS: &str = "mnt:[4026531841]";

/// A host root under construction.
pub struct Node {
    pub dir: TestDir,
}

impl Node {
    pub fn new(label: &str) -> Node {
        let node = Node {
            dir: TestDir::new(&format!("bench-node-{label}")),
        };
        node.file("/etc/hostname", "fixture-node\n", 0o644);
        node.file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\netcd:x:998:998::/var/lib/etcd:/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n",
            0o644,
        );
        node.file(
            "/etc/group",
            "root:x:0:\netcd:x:998:\nalice:x:1000:\n",
            0o644,
        );
        node.proc(1, &["/sbin/init"]);
        node
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a host file with a mode, owned by root.
    pub fn file(&self, path: &str, body: &str, mode: u32) -> &Self {
        self.file_owned(path, body, mode, 0, 0)
    }

    /// Writes a host file with a mode and owner (owners other than the
    /// test's own need root; see [`can_chown`]).
    pub fn file_owned(&self, path: &str, body: &str, mode: u32, uid: u32, gid: u32) -> &Self {
        let real = self.dir.write(path.trim_start_matches('/'), body);
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode)).expect("chmod");
        chown(&real, uid, gid);
        self
    }

    pub fn chmod(&self, path: &str, mode: u32) {
        let real = self.dir.join(path.trim_start_matches('/'));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub fn chown(&self, path: &str, uid: u32, gid: u32) {
        chown(&self.dir.join(path.trim_start_matches('/')), uid, gid);
    }

    pub fn dir(&self, path: &str) -> &Self {
        std::fs::create_dir_all(self.dir.join(path.trim_start_matches('/'))).expect("mkdir");
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let link = self.dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
        let _ = std::fs::remove_file(&link);
        symlink(target, link).expect("symlink");
        self
    }

    /// A process in the host's mount namespace.
    pub fn proc(&self, pid: u32, argv: &[&str]) -> &Self {
        self.proc_in_ns(pid, argv, HOST_MNT_NS)
    }

    pub fn proc_in_ns(&self, pid: u32, argv: &[&str], ns: &str) -> &Self {
        let mut raw = Vec::new();
        for a in argv {
            raw.extend_from_slice(a.as_bytes());
            raw.push(0);
        }
        self.proc_raw(pid, &raw);
        self.symlink(&format!("/proc/{pid}/ns/mnt"), ns);
        self
    }

    /// A process whose cmdline bytes are given as is.
    pub fn proc_raw(&self, pid: u32, raw: &[u8]) -> &Self {
        self.dir.write(format!("proc/{pid}/cmdline"), raw);
        self
    }

    /// The systemd unit a process runs in (its cgroup).
    pub fn cgroup(&self, pid: u32, unit: &str) -> &Self {
        self.dir.write(
            format!("proc/{pid}/cgroup"),
            format!("0::/system.slice/{unit}\n"),
        );
        self
    }

    /// Runs bench-node on this node; extra args after the defaults.
    pub fn run(&self, extra: &[&str]) -> RunResult {
        let mut cmd = harness::tool("bench-node");
        cmd.arg("--host-root").arg(self.root()).args(extra);
        harness::run(&mut cmd)
    }

    /// Runs with `--format json` and returns results by check id, asserting
    /// exit 0.
    pub fn results(&self, extra: &[&str]) -> Results {
        let out = self.run(extra);
        out.assert_code(0);
        let doc = out.json();
        Results::from_doc(doc)
    }
}

/// A run's results by id, plus the whole document.
pub struct Results {
    pub doc: Value,
    pub by_id: BTreeMap<String, Value>,
}

impl Results {
    pub fn from_doc(doc: Value) -> Results {
        let by_id = doc["results"]
            .as_array()
            .expect("results[]")
            .iter()
            .map(|r| (r["id"].as_str().expect("id").to_string(), r.clone()))
            .collect();
        Results { doc, by_id }
    }

    pub fn get(&self, id: &str) -> &Value {
        self.by_id
            .get(id)
            .unwrap_or_else(|| panic!("no result for {id} in {:#}", self.doc))
    }

    pub fn status(&self, id: &str) -> &str {
        self.get(id)["status"].as_str().expect("status")
    }

    /// Asserts a check's status, showing the whole result on mismatch.
    pub fn expect(&self, id: &str, status: &str) -> &Value {
        let r = self.get(id);
        assert_eq!(
            r["status"], status,
            "{id}: {r:#}\nwarnings: {}",
            self.doc["warnings"]
        );
        r
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    if !harness::is_root() {
        return;
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
}

/// Whether tests can give files to other owners (root only).
pub fn can_chown() -> bool {
    harness::is_root()
}

/// A minimal little-endian ELF64 file with a Go ≥1.18 `.go.buildinfo`
/// section whose recorded `-ldflags` carry `gitVersion` — the way a kubelet
/// built by Kubernetes' release tooling records its version.
pub fn go_binary_with_version(git_version: &str) -> Vec<u8> {
    let modinfo = format!(
        "0w\u{af}\u{c}\u{92}t\u{8}\u{2}A\u{e1}\u{c1}\u{7}\u{e6}\u{d6}\u{18}\u{e6}path\tk8s.io/kubernetes/cmd/kubelet\nmod\tk8s.io/kubernetes\t(devel)\t\nbuild\t-ldflags=\"-X 'k8s.io/component-base/version.gitVersion={git_version}' -X 'k8s.io/component-base/version.gitTreeState=clean'\"\nbuild\tCGO_ENABLED=1\n"
    );
    let mut info = b"\xff Go buildinf:".to_vec();
    info.push(8);
    info.push(2);
    info.resize(32, 0);
    for s in ["go1.22.12", modinfo.as_str()] {
        let mut len = s.len();
        loop {
            let mut b = u8::try_from(len & 0x7f).expect("byte");
            len >>= 7;
            if len > 0 {
                b |= 0x80;
            }
            info.push(b);
            if len == 0 {
                break;
            }
        }
        info.extend_from_slice(s.as_bytes());
    }
    let shstrtab = b"\0.shstrtab\0.go.buildinfo\0".to_vec();
    let info_off = 64u64;
    let str_off = info_off + info.len() as u64;
    let sh_off = (str_off + shstrtab.len() as u64).next_multiple_of(8);
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[0x28..0x30].copy_from_slice(&sh_off.to_le_bytes());
    elf[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // shentsize
    elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes()); // shnum
    elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes()); // shstrndx
    elf.extend_from_slice(&info);
    elf.extend_from_slice(&shstrtab);
    elf.resize(usize::try_from(sh_off).expect("offset"), 0);
    let section = |name: u32, ty: u32, off: u64, size: u64| {
        let mut e = vec![0u8; 64];
        e[0..4].copy_from_slice(&name.to_le_bytes());
        e[4..8].copy_from_slice(&ty.to_le_bytes());
        e[0x18..0x20].copy_from_slice(&off.to_le_bytes());
        e[0x20..0x28].copy_from_slice(&size.to_le_bytes());
        e
    };
    elf.extend(section(0, 0, 0, 0));
    elf.extend(section(1, 3, str_off, shstrtab.len() as u64));
    elf.extend(section(11, 1, info_off, info.len() as u64));
    elf
}
