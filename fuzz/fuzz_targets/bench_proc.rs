//! bench-node: `/proc/<pid>/mountinfo` tables and path translation through
//! them, and component version text and Go build info.
#![no_main]

use bench_node::mounts::{self, MountTable};
use bench_node::version::{self, KubeVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let table = MountTable::parse(&text);
    for path in [
        "/",
        "/var/lib/kubelet/config.yaml",
        "/etc/kubernetes/kubelet.conf",
    ] {
        let _ = mounts::host_path(&table, &table, path);
    }
    let _ = version::parse_buildinfo(data);
    let _ = version::parse_minor(&text);
    if let Some(found) = KubeVersion::parse(&text, "fuzz") {
        let _ = found.minor_version();
    }
});
