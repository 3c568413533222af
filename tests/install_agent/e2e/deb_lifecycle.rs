//! The whole life of a DEB agent on one node, phase by phase: refused
//! package, plan, fresh install over HTTPS, converged re-run, drift repair,
//! upgrade from a path, uninstall.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::agent_pkg::{self, ConnectProxy, HttpsServer, Source};
use super::super::node::{rootfs, Node};
use super::*;
use crate::harness::TestDir;

/// One node and everything the phases share.
struct Lifecycle {
    t: Transcript,
    node: Node,
    dir: TestDir,
    creds: PathBuf,
    server: HttpsServer,
}

const NO_SUM: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Lifecycle {
    fn run(
        &mut self,
        what: &str,
        command: &str,
        profile: &Path,
        extra: &[&str],
    ) -> crate::harness::RunResult {
        let mut cmd = ia(&self.node, command, profile, &self.creds, extra);
        self.t.run(what, &mut cmd)
    }

    fn profile(&self, name: &str, version: &str, deb: &Source<'_>) -> PathBuf {
        agent_pkg::profile(
            self.dir.path(),
            name,
            version,
            deb,
            &Source::Path(Path::new("/none.rpm"), NO_SUM),
        )
    }

    fn url(&self, package: &Path) -> String {
        format!(
            "{}/{}",
            self.server.url,
            package.file_name().unwrap().to_string_lossy()
        )
    }

    fn ca_args(&self) -> [String; 2] {
        [
            "--ca-bundle".to_owned(),
            self.server.ca.display().to_string(),
        ]
    }

    fn staging_is_empty(&self) -> bool {
        let staging = self.node.path("/var/lib/nodeguard/install-agent/staging");
        fs::read_dir(staging).map_or(true, |mut d| d.next().is_none())
    }

    /// A wrong sha256 is refused before anything touches the node.
    fn refuses_a_wrong_sha256(&mut self, deb: &Path, wrong_sum: &str) {
        let bad = self.profile("bad.toml", "1.0.0", &Source::Url(self.url(deb), wrong_sum));
        let ca = self.ca_args();
        let r = self.run("bad sha256", "install", &bad, &[&ca[0], &ca[1]]);
        r.assert_code(5);
        let j = r.json();
        assert_eq!(j["status"], "failed");
        assert!(
            j["reason"].as_str().unwrap().contains("sha256 mismatch"),
            "{}",
            j["reason"]
        );
        let (code, _) = self.node.sh("dpkg-query -W tinyagent");
        assert_eq!(code, 1, "nothing installed after a sha256 mismatch");
        assert!(
            !self.node.path("/etc/tinyagent").exists(),
            "no config written"
        );
        assert!(
            !self
                .node
                .path("/var/lib/nodeguard/install-agent/tinyagent.json")
                .exists(),
            "no record"
        );
        assert!(self.staging_is_empty(), "nothing staged");
    }

    /// plan, then a fresh install over HTTPS with the private CA.
    fn installs_fresh_over_https(&mut self, profile: &Path) {
        let r = self.run("plan v1", "plan", profile, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "planned");
        assert_eq!(j["observed"]["installed_version"], Value::Null);
        assert_eq!(
            step_names(&j),
            ["install", "configure", "enable", "activate", "start"]
        );

        // Through an HTTP CONNECT proxy whose URL carries credentials: the
        // download honours HTTPS_PROXY and the password never shows.
        let proxy = ConnectProxy::start(self.dir.path());
        let proxy_url = format!("http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{}", proxy.port);
        let ca = self.ca_args();
        let mut cmd = ia(
            &self.node,
            "install",
            profile,
            &self.creds,
            &[&ca[0], &ca[1]],
        );
        cmd.env("HTTPS_PROXY", &proxy_url)
            .env("NO_PROXY", "registry.invalid");
        let r = self.t.run("install v1", &mut cmd);
        let server_port = self.server.url.rsplit(':').next().unwrap().to_owned();
        let proxy_log = proxy.log();
        assert!(
            proxy_log.contains(&format!("CONNECT localhost:{server_port}")),
            "download bypassed the proxy:\n{proxy_log}"
        );
        self.t.add("proxy log", &proxy_log);
        r.assert_code(0);
        // The leak check reads debug logs: make sure there are some.
        assert!(
            r.stderr.contains("DEBUG") && r.stderr.contains("running "),
            "no debug log:\n{}",
            r.stderr
        );
        let j = r.json();
        assert_eq!(j["status"], "changed", "{}", r.stdout);
        assert_eq!(
            (
                j["package"]["format"].as_str(),
                j["package"]["installer"].as_str()
            ),
            (Some("deb"), Some("apt-get"))
        );
        assert!(
            j["host"]["exec"].as_str().unwrap().contains("systemd-run"),
            "{}",
            j["host"]["exec"]
        );
        assert_eq!(
            step_names(&j),
            [
                "fetch",
                "install",
                "configure",
                "enable",
                "activate",
                "start",
                "verify"
            ]
        );
        assert!(j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["duration_ms"].is_u64() && s["error"].is_null()));
        assert_installed(&self.node, "1.0.0");
        assert_config(&self.node, true);
        assert_service_active(&self.node);
        let activated = fs::read_to_string(self.node.path("/var/lib/tinyagent/activated")).unwrap();
        assert_eq!(activated, "activated\n");
        assert_clean_host_env(&self.node);
        assert!(self.staging_is_empty(), "staging cleaned after install");
        let record = self
            .node
            .path("/var/lib/nodeguard/install-agent/tinyagent.json");
        assert_eq!(
            fs::metadata(record).unwrap().mode() & 0o777,
            0o600,
            "ownership record is root-only"
        );
    }

    /// A second run on the converged node changes nothing and says so;
    /// metrics and the JSONL status agree.
    fn reruns_as_a_no_op(&mut self, profile: &Path) {
        let metrics = self.dir.join("install-agent.prom");
        let r = self.run(
            "rerun",
            "install",
            profile,
            &["--metrics-file", metrics.to_str().unwrap()],
        );
        r.assert_code(0);
        let j = r.json();
        assert_eq!(
            (j["status"].as_str(), j["changed"].as_bool()),
            (Some("converged"), Some(false)),
            "{}",
            r.stdout
        );
        assert_eq!(step_names(&j), ["converge"]);
        let prom = fs::read_to_string(&metrics).unwrap();
        for line in [
            "nodeguard_install_agent_converged{agent=\"tinyagent\"} 1",
            "nodeguard_install_agent_service_active{agent=\"tinyagent\"} 1",
            "nodeguard_install_agent_info{agent=\"tinyagent\",version=\"1.0.0\"} 1",
            "nodeguard_install_agent_actions{agent=\"tinyagent\",action=\"install\"} 0",
        ] {
            assert!(prom.lines().any(|l| l == line), "missing {line} in\n{prom}");
        }
        self.t.add("metrics", &prom);

        let r = self.run("status jsonl", "status", profile, &["--format", "jsonl"]);
        r.assert_code(0);
        let lines = r.json_lines();
        assert_eq!(
            (lines[0]["record"].as_str(), lines[0]["status"].as_str()),
            (Some("summary"), Some("healthy"))
        );
        assert!(
            lines[1..]
                .iter()
                .all(|l| l["record"] == "step" && l["status"] == "ok"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.lines().all(|l| l.len() < 8192));
    }

    /// A hand-edited config and a stopped unit are drift: status says
    /// unhealthy, install repairs exactly that.
    fn repairs_drift(&mut self, profile: &Path) {
        fs::write(
            self.node.path("/etc/tinyagent/agent.conf"),
            "token=tampered\n",
        )
        .unwrap();
        self.node.sh("systemctl stop tinyagent");
        let r = self.run("status drifted", "status", profile, &[]);
        r.assert_code(1);
        assert_eq!(r.json()["status"], "unhealthy");
        let r = self.run("repair", "install", profile, &[]);
        r.assert_code(0);
        assert_eq!(step_names(&r.json()), ["configure", "start", "verify"]);
        assert_config(&self.node, true);
        assert_service_active(&self.node);
    }

    /// Upgrade v1 -> v2 from an image path; the running agent is replaced.
    fn upgrades(&mut self, profile: &Path) {
        let r = self.run("upgrade", "install", profile, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(
            step_names(&j),
            ["fetch", "upgrade", "enable", "activate", "restart", "verify"],
            "{}",
            r.stdout
        );
        assert_eq!(j["observed"]["installed_version"], "1.0.0");
        assert_installed(&self.node, "2.0.0");
        assert_service_active(&self.node);
        let heartbeat = self.node.path("/var/lib/tinyagent/heartbeat");
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&heartbeat).unwrap_or_default() != "configured 2.0.0\n" {
            assert!(Instant::now() < deadline, "v2 agent never ran");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Uninstall removes package, unit, config, credentials and record.
    fn uninstalls_everything(&mut self, profile: &Path) {
        let r = self.run("uninstall", "uninstall", profile, &["--purge"]);
        r.assert_code(0);
        assert_eq!(r.json()["status"], "removed", "{}", r.stdout);
        let (code, _) = self
            .node
            .sh("dpkg-query -W -f='${db:Status-Abbrev}' tinyagent | grep -q '^ii'");
        assert_ne!(code, 0, "package removed");
        let (_, state) = self
            .node
            .sh("systemctl show -p LoadState --value tinyagent");
        assert_eq!(state.trim(), "not-found");
        for gone in [
            "/etc/tinyagent",
            "/var/lib/tinyagent",
            "/var/lib/nodeguard/install-agent/tinyagent.json",
        ] {
            assert!(!self.node.path(gone).exists(), "{gone} left behind");
        }
        let r = self.run("uninstall again", "uninstall", profile, &[]);
        r.assert_code(0);
        assert_eq!(r.json()["status"], "absent");
    }
}

#[test]
fn deb_agent_full_lifecycle_on_a_systemd_node() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-deb");
    let repo = dir.join("repo");
    fs::create_dir_all(&repo).unwrap();
    let (deb1, sum1) = agent_pkg::build_deb(&repo, "1.0.0");
    let (deb2, sum2) = agent_pkg::build_deb(&repo, "2.0.0");
    let server = HttpsServer::start(dir.path(), &repo);
    let creds = write_creds(&dir, true);
    let node = Node::boot("deb", &rootfs, |_| {});
    let mut life = Lifecycle {
        t: Transcript::default(),
        node,
        dir,
        creds,
        server,
    };

    life.refuses_a_wrong_sha256(&deb1, &sum2);
    let v1 = life.profile("v1.toml", "1.0.0", &Source::Url(life.url(&deb1), &sum1));
    life.installs_fresh_over_https(&v1);
    life.reruns_as_a_no_op(&v1);
    life.repairs_drift(&v1);
    let v2 = life.profile("v2.toml", "2.0.0", &Source::Path(&deb2, &sum2));
    life.upgrades(&v2);
    life.uninstalls_everything(&v2);

    let server_log = life.server.log();
    life.t.add("https server log", &server_log);
    finish(&mut life.t, &life.node);
}
