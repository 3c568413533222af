//! The stand-in node shared by the black-box tests: canned crictl answers,
//! canned Trivy reports, a cache and output dir, and invocation logs.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::{self, TestDir};

pub const NGINX_DIGEST: &str =
    "docker.io/library/nginx@sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a";
pub const REDIS_DIGEST: &str =
    "docker.io/library/redis@sha256:541209804a009ab69e97a06504706cfe83be2693150885fa08ed05a91f19b4ee";

/// A node as the stand-ins see it: canned crictl answers, canned Trivy
/// reports, a cache and output dir, and logs of every invocation.
pub struct Node {
    pub dir: TestDir,
}

impl Node {
    /// A containerd node: three nginx replicas and one redis (fixture
    /// `crictl/containerd`), nginx reporting debian-buster's findings and
    /// everything else sl-micro's clean report.
    pub fn containerd() -> Self {
        let node = Self::with_runtime("containerd", "containerd", "1.7.22");
        node.report_for(NGINX_DIGEST, "debian-buster");
        node
    }

    pub fn with_runtime(fixture: &str, name: &str, version: &str) -> Self {
        let dir = TestDir::new("scan-images");
        let src = harness::fixtures("scan-images")
            .join("crictl")
            .join(fixture);
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join("crictl").join(entry.file_name()))
                .or_else(|_| {
                    std::fs::create_dir_all(dir.join("crictl"))?;
                    std::fs::copy(entry.path(), dir.join("crictl").join(entry.file_name()))
                })
                .unwrap();
        }
        dir.write(
            "crictl/version.txt",
            format!("Version:  0.1.0\nRuntimeName:  {name}\nRuntimeVersion:  {version}\nRuntimeApiVersion:  v1\n"),
        );
        let clean =
            std::fs::read(harness::shared_fixtures().join("trivy/sl-micro-rancher5.4.json"))
                .unwrap();
        dir.write("reports/default.json", clean);
        // A seeded, current DB: no download needed.
        dir.write(
            "cache/trivy/db/metadata.json",
            r#"{"Version":2,"NextUpdate":"2999-01-01T00:00:00Z","UpdatedAt":"2026-11-20T06:00:00Z","DownloadedAt":"2026-11-20T07:00:00Z"}"#,
        );
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("hostroot")).unwrap();
        let node = Self { dir };
        node.trivy_mode("", "");
        node
    }

    /// scan-images starts Trivy with an empty environment, so the stand-in's
    /// settings are baked into a wrapper script.
    pub fn trivy_mode(&self, mode: &str, only: &str) {
        let d = self.dir.path().display();
        let script = format!(
            "#!/bin/sh\nexport FAKE_TRIVY_LOG={d}/trivy.log FAKE_TRIVY_REPORTS={d}/reports \
             FAKE_TRIVY_STATE={d}/state FAKE_TRIVY_MODE='{mode}' FAKE_TRIVY_ONLY='{only}'\nexec {} \"$@\"\n",
            Self::stand_in("trivy").display()
        );
        let path = self.dir.write("bin/trivy", script);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    pub fn report_for(&self, target: &str, shared_fixture: &str) {
        let name: String = target
            .chars()
            .map(|c| if "/:@".contains(c) { '_' } else { c })
            .collect();
        let bytes =
            std::fs::read(harness::shared_fixtures().join(format!("trivy/{shared_fixture}.json")))
                .unwrap();
        self.dir.write(format!("reports/{name}.json"), bytes);
    }

    pub fn stand_in(name: &str) -> PathBuf {
        harness::fixtures("scan-images").join("bin").join(name)
    }

    pub fn cmd(&self) -> Command {
        self.cmd_for(
            "unix:///run/containerd/containerd.sock",
            &Self::stand_in("crictl"),
        )
    }

    pub fn cmd_for(&self, endpoint: &str, crictl: &std::path::Path) -> Command {
        let mut cmd = self.build(crictl);
        cmd.args(["--runtime-endpoint", endpoint]);
        cmd
    }

    pub fn cmd_with_trivy(&self, mode: &str, only: &str) -> Command {
        self.trivy_mode(mode, only);
        self.cmd()
    }

    pub fn cmd_discovering_the_socket(&self) -> Command {
        self.build(&Self::stand_in("crictl"))
    }

    pub fn build(&self, crictl: &std::path::Path) -> Command {
        let mut cmd = harness::tool("scan-images");
        cmd.arg("--crictl")
            .arg(crictl)
            .arg("--trivy")
            .arg(self.dir.join("bin/trivy"))
            .arg("--host-root")
            .arg(self.dir.join("hostroot"))
            .arg("--node-name")
            .arg("node-1")
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .arg("--output-dir")
            .arg(self.dir.join("out"))
            .arg("--skip-java-db")
            .env("FAKE_CRICTL_DIR", self.dir.join("crictl"))
            .env("FAKE_CRICTL_LOG", self.dir.join("crictl.log"))
            .env("FAKE_TRIVY_PROBE", "must-not-reach-trivy");
        cmd
    }

    pub fn trivy_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("trivy.log")).unwrap_or_default()
    }

    pub fn trivy_scans(&self) -> Vec<String> {
        self.trivy_log()
            .lines()
            .filter(|l| l.starts_with("ARGV ") && !l.contains("--download-"))
            .map(str::to_string)
            .collect()
    }

    pub fn out_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("out")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

pub fn image<'a>(report: &'a Value, tag_or_digest: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["repo_tags"]
                .as_array()
                .unwrap()
                .iter()
                .chain(i["repo_digests"].as_array().unwrap())
                .any(|t| t.as_str().unwrap().contains(tag_or_digest))
        })
        .unwrap_or_else(|| panic!("no image {tag_or_digest} in {report:#}"))
}
