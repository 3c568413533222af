//! scan-images's cycle against stand-in crictl/trivy: dedup, cache, DB
//! update, socket discovery, CRI-O and host scans, output formats.

use std::path::PathBuf;

use serde_json::Value;

use super::node::{image, Node, NGINX_DIGEST, REDIS_DIGEST};
use crate::harness;

#[test]
fn each_image_is_scanned_once_and_the_rerun_is_cached() {
    let node = Node::containerd();
    let metrics = node.dir.join("metrics/scan.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let result = harness::run(node.cmd().arg("--metrics-file").arg(&metrics));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["tool"], "scan-images");
    assert_eq!(report["summary"]["images"], 2, "{report:#}");
    assert_eq!(report["summary"]["containers"], 4);
    assert_eq!(report["summary"]["scanned"], 2);
    assert_eq!(report["summary"]["trivy_runs"], 2);
    assert_eq!(report["summary"]["db_updated_at"], "2026-11-20T06:00:00Z");

    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "scanned");
    assert_eq!(
        nginx["containers"].as_array().unwrap().len(),
        3,
        "three replicas, one image"
    );
    assert_eq!(nginx["containers"][0]["namespace"], "shop");
    assert_eq!(nginx["containers"][0]["pod"], "web-7d4b9c-aaaaa");
    assert_eq!(nginx["containers"][0]["container"], "nginx");
    assert_eq!(nginx["vulnerabilities"]["CRITICAL"], 1);
    assert_eq!(nginx["vulnerabilities"]["LOW"], 1);
    assert_eq!(
        nginx["scan_target"], NGINX_DIGEST,
        "the repo digest, not the config ID"
    );
    assert_eq!(nginx["error"], Value::Null);
    let report_path = PathBuf::from(nginx["report_path"].as_str().unwrap());
    assert!(report_path.starts_with(node.dir.join("out")));
    let full: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(
        full["ArtifactName"], "testdata/fixtures/images/debian-buster.tar.gz",
        "the full Trivy report is kept"
    );
    let redis = image(&report, "redis@");
    assert_eq!(redis["vulnerabilities"]["CRITICAL"], 0);
    assert_eq!(redis["scan_target"], REDIS_DIGEST);

    // Trivy: one process per unique image, the node's store, the k8s.io
    // namespace, a private TMPDIR, none of our environment.
    let scans = node.trivy_scans();
    assert_eq!(scans.len(), 2, "{}", node.trivy_log());
    for scan in &scans {
        assert!(
            scan.contains("image --image-src containerd --scanners vuln"),
            "{scan}"
        );
        assert!(scan.contains("--skip-db-update"), "{scan}");
    }
    let log = node.trivy_log();
    assert!(
        log.contains(
            "CONTAINERD_ADDRESS=/run/containerd/containerd.sock CONTAINERD_NAMESPACE=k8s.io"
        ),
        "{log}"
    );
    assert!(
        !log.contains("must-not-reach-trivy"),
        "environment leaked into Trivy: {log}"
    );
    let tmpdirs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("TMPDIR=").nth(1))
        .collect();
    assert_ne!(
        tmpdirs[0].split(' ').next(),
        tmpdirs[1].split(' ').next(),
        "private TMPDIR per scan"
    );

    // crictl: always -r, inspect never needed for a clean join.
    let crictl_log = std::fs::read_to_string(node.dir.join("crictl.log")).unwrap();
    assert!(
        crictl_log
            .lines()
            .all(|l| l.starts_with("-r unix:///run/containerd/containerd.sock")),
        "{crictl_log}"
    );
    assert!(!crictl_log.contains("inspect"), "{crictl_log}");

    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("nodeguard_scan_images_vulnerabilities{severity=\"CRITICAL\",image_repository=\"docker.io/library/nginx\",image_tag=\"1.27\",image_digest=\"sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a\"} 1"), "{prom}");
    assert!(
        prom.contains("image_repository=\"docker.io/library/redis\",image_tag=\"\""),
        "{prom}"
    );
    assert!(
        prom.contains("nodeguard_scan_images_scan_failures 0"),
        "{prom}"
    );
    assert!(
        prom.contains("nodeguard_scan_images_last_success_timestamp_seconds"),
        "{prom}"
    );

    // Unchanged images, unchanged DB: no Trivy at all.
    let again = harness::run(&mut node.cmd());
    again.assert_code(0);
    let report = again.json();
    assert_eq!(report["summary"]["cached"], 2, "{report:#}");
    assert_eq!(report["summary"]["trivy_runs"], 0);
    assert_eq!(node.trivy_scans().len(), 2, "no new Trivy process");
    assert_eq!(
        image(&report, "nginx:1.27")["vulnerabilities"]["CRITICAL"],
        1
    );
    assert_eq!(
        image(&report, "nginx:1.27")["report_path"]
            .as_str()
            .unwrap(),
        report_path.to_str().unwrap()
    );

    // --ttl 0: everything is rescanned; --keep 1 then leaves one report per image.
    let third = harness::run(node.cmd().args(["--ttl", "0s", "--keep", "1"]));
    assert_eq!(third.json()["summary"]["scanned"], 2);
    assert_eq!(node.out_files().len(), 2, "{:?}", node.out_files());
}

#[test]
fn a_new_db_means_a_rescan_and_one_download_per_cycle() {
    let node = Node::containerd();
    std::fs::remove_file(node.dir.join("cache/trivy/db/metadata.json")).unwrap();
    let result = harness::run(&mut node.cmd());
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["db"]["status"], "updated");
    assert_eq!(report["db"]["updated_at"], "2026-11-20T06:00:00.123456Z");
    let downloads = node
        .trivy_log()
        .lines()
        .filter(|l| l.contains("--download-db-only"))
        .count();
    assert_eq!(downloads, 1);
    assert_eq!(
        report["summary"]["trivy_runs"], 3,
        "one DB update + two scans"
    );
}

#[test]
fn no_socket_under_the_host_root_lists_what_was_tried() {
    let node = Node::containerd();
    let result = harness::run(&mut node.cmd_discovering_the_socket());
    result.assert_code(2);
    assert!(
        result.stderr.contains("no container runtime socket found"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("hostroot/run/crio/crio.sock"),
        "{}",
        result.stderr
    );

    // A socket under the host root is found and passed with -r.
    let sock_dir = node.dir.join("hostroot/run/k3s/containerd");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let _listener =
        std::os::unix::net::UnixListener::bind(sock_dir.join("containerd.sock")).unwrap();
    let result = harness::run(&mut node.cmd_discovering_the_socket());
    result.assert_code(0);
    let report = result.json();
    let endpoint = report["runtime"]["endpoint"].as_str().unwrap();
    assert!(
        endpoint.ends_with("hostroot/run/k3s/containerd/containerd.sock"),
        "{endpoint}"
    );
    let crictl_log = std::fs::read_to_string(node.dir.join("crictl.log")).unwrap();
    assert!(
        crictl_log
            .lines()
            .all(|l| l.starts_with(&format!("-r {endpoint}"))),
        "{crictl_log}"
    );
    let log = node.trivy_log();
    assert!(
        log.contains("hostroot/run/k3s/containerd/containerd.sock CONTAINERD_NAMESPACE=k8s.io"),
        "{log}"
    );
}

#[test]
fn images_over_the_size_limit_are_skipped_with_the_reason() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--max-image-size", "50MB"]));
    result.assert_code(0);
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "skipped");
    assert!(
        nginx["error"]
            .as_str()
            .unwrap()
            .contains("72955450 bytes, over --max-image-size 50000000"),
        "{nginx:#}"
    );
    assert_eq!(image(&report, "redis@")["status"], "scanned");
    assert_eq!(report["summary"]["skipped"], 1);
    assert_eq!(node.trivy_scans().len(), 1);
}

#[test]
fn concurrent_scans_each_get_their_own_scratch() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--concurrency", "4"]));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["summary"]["scanned"], 2, "{report:#}");
    let log = node.trivy_log();
    let mut tmpdirs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("TMPDIR=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    tmpdirs.sort_unstable();
    tmpdirs.dedup();
    assert_eq!(tmpdirs.len(), 2, "{log}");
    let work: Vec<_> = std::fs::read_dir(node.dir.join("cache/work"))
        .unwrap()
        .collect();
    assert!(work.is_empty(), "scratch dirs are removed: {work:?}");
}

#[test]
fn fail_on_sets_exit_code_one() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--fail-on", "critical"]));
    result.assert_code(1);
    assert_eq!(result.json()["summary"]["fail_on_triggered"], true);
    let result =
        harness::run(
            node.cmd()
                .args(["--fail-on", "critical", "--severity", "HIGH,MEDIUM"]),
        );
    result.assert_code(0);
    let scans = node.trivy_scans();
    assert!(
        scans.last().unwrap().contains("--severity HIGH,MEDIUM"),
        "{scans:?}"
    );
}

#[test]
fn jsonl_has_one_line_per_image_and_a_summary() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--format", "jsonl"]));
    result.assert_code(0);
    let lines = result.json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["record"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["image", "image", "summary"]);
    assert_eq!(lines[2]["summary"]["images"], 2);
    assert!(lines.iter().all(|l| l["node"] == "node-1"));
}

#[test]
fn crio_images_are_scanned_through_a_running_root() {
    let node = Node::with_runtime("crio", "cri-o", "1.30.4");
    let id = format!("d1{}", "0".repeat(62));
    std::fs::copy(
        node.dir.join("crictl/inspect-d1.json"),
        node.dir.join(format!("crictl/inspect-{id}.json")),
    )
    .unwrap();
    // /proc/4242/root and the overlay CRI-O mounted for it share a device;
    // the host's mountinfo says where that overlay is mounted.
    std::fs::create_dir_all(node.dir.join("hostroot/proc/4242/root")).unwrap();
    let root = node
        .dir
        .join("hostroot/var/lib/containers/storage/overlay/3f1c/merged");
    std::fs::create_dir_all(&root).unwrap();
    let (major, minor) = device_numbers(&root);
    node.dir.write(
        "hostroot/proc/1/mountinfo",
        format!(
            "22 1 {major}:{minor} / / rw - ext4 /dev/sda1 rw\n\
             57 22 {major}:{minor} / /var/lib/containers/storage/overlay/3f1c/merged rw - overlay overlay rw\n"
        ),
    );
    let result =
        harness::run(&mut node.cmd_for("unix:///run/crio/crio.sock", &Node::stand_in("crictl")));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["runtime"]["kind"], "cri-o");
    let ovn = image(&report, "ocp-v4.0-art-dev@");
    assert_eq!(ovn["status"], "scanned", "{ovn:#}");
    assert_eq!(ovn["source"], "rootfs");
    assert!(ovn["note"].as_str().unwrap().contains("CRI-O"), "{ovn:#}");
    assert_eq!(ovn["scan_target"], root.to_str().unwrap());
    assert!(ovn["image_id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:c0e1d0b2"));
    // The dns image's only container has no inspect answer: named failure.
    let dns = image(&report, "dns:v4.16");
    assert_eq!(dns["status"], "failed");
    assert!(
        dns["error"]
            .as_str()
            .unwrap()
            .contains("no running container of this image has a readable root"),
        "{dns:#}"
    );
    let scans = node.trivy_scans();
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert!(
        scans[0].starts_with("ARGV rootfs --scanners vuln"),
        "{scans:?}"
    );
}

#[test]
fn host_scan_skips_container_storage() {
    let node = Node::containerd();
    node.dir.write(
        "hostroot/var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nVersion: 5.2\n",
    );
    let result = harness::run(node.cmd().arg("--host"));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["host"]["status"], "scanned", "{report:#}");
    let scans = node.trivy_scans();
    let host_scan = scans.iter().find(|s| s.starts_with("ARGV rootfs")).unwrap();
    assert!(host_scan.contains("--pkg-types os"), "{host_scan}");
    assert!(host_scan.contains("var/lib/containerd"), "{host_scan}");
    assert!(host_scan.ends_with("hostroot"), "{host_scan}");
    // Unchanged package DB: cached; a package change: rescanned.
    let again = harness::run(node.cmd().arg("--host"));
    assert_eq!(again.json()["host"]["status"], "cached");
    node.dir.write(
        "hostroot/var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nVersion: 5.3\n\n",
    );
    let third = harness::run(node.cmd().arg("--host"));
    assert_eq!(third.json()["host"]["status"], "scanned");
}

#[test]
fn missing_layer_blobs_fall_back_to_the_running_root() {
    let node = Node::containerd();
    // One nginx replica answers `inspect` with its pid; its root is an
    // overlay mounted on the host (mountinfo says where).
    let id = format!("c1{}", "0".repeat(62));
    node.dir.write(
        format!("crictl/inspect-{id}.json"),
        format!(r#"{{"status":{{"id":"{id}","imageRef":"sha256:x"}},"info":{{"pid":777}}}}"#),
    );
    std::fs::create_dir_all(node.dir.join("hostroot/proc/777/root")).unwrap();
    let root = node
        .dir
        .join("hostroot/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let (major, minor) = device_numbers(&root);
    node.dir.write(
        "hostroot/proc/1/mountinfo",
        format!("99 1 {major}:{minor} / /run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs rw - overlay overlay rw\n"),
    );
    let result = harness::run(&mut node.cmd_with_trivy("noblob", "nginx"));
    result.assert_code(0);
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "scanned", "{nginx:#}");
    assert_eq!(nginx["source"], "rootfs");
    assert!(
        nginx["note"].as_str().unwrap().contains("layer blobs"),
        "{nginx:#}"
    );
    assert_eq!(nginx["scan_target"], root.to_str().unwrap());
    let scans = node.trivy_scans();
    assert_eq!(scans.len(), 3, "image (fails), rootfs, redis: {scans:?}");

    // The cached result still says how it was obtained.
    let again = harness::run(&mut node.cmd_with_trivy("", ""));
    let report = again.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "cached");
    assert_eq!(nginx["source"], "rootfs");
    assert_eq!(nginx["scan_target"], root.to_str().unwrap());
    assert_eq!(node.trivy_scans().len(), 3);
}

/// The major and minor numbers of the device holding `path`, as
/// `/proc/<pid>/mountinfo` prints them.
fn device_numbers(path: &std::path::Path) -> (u64, u64) {
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(path).unwrap());
    (nix::sys::stat::major(dev), nix::sys::stat::minor(dev))
}
