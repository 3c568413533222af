//! The session's orchestration (install, recovery, start-limit reset,
//! uninstall, not_configured, integrity) against the recording executor:
//! which host commands run, in which order, and what is left on the host
//! root, without root, namespaces or a booted node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use sha2::{Digest, Sha256};

use nodeguard_common::hostroot::HostRoot;

use crate::cli::{Cli, Command};
use crate::fetch::hex;
use crate::host::tests::facts_for;
use crate::host::Init;
use crate::hostexec::{HostCommand, HostExec};
use crate::profile::Arch;
use crate::recording::{FakeHost, RecordingExec};
use crate::report::{AgentReport, Outcome, StepStatus};
use crate::session::Session;
use crate::state::{InProgress, StateRecord, StateStore, STATE_DIR};
use crate::{exit, install, uninstall};

impl HostExec for Arc<RecordingExec> {
    fn run(&self, cmd: &HostCommand) -> anyhow::Result<nodeguard_common::process::Output> {
        self.as_ref().run(cmd)
    }
    fn uses_transient_units(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        self.as_ref().describe()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    exec: Arc<RecordingExec>,
}

const PACKAGE: &[u8] = b"not really a deb";

impl Fixture {
    fn new(host: FakeHost) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("root/usr/bin")).expect("root");
        let apt = dir.path().join("root/usr/bin/apt-get");
        std::fs::write(&apt, "#!/bin/sh\n").expect("apt-get");
        std::fs::set_permissions(&apt, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        std::fs::create_dir(dir.path().join("creds")).expect("creds");
        std::fs::write(dir.path().join("creds/token"), "orchestration-canary\n").expect("token");
        std::fs::write(dir.path().join("tinyagent.deb"), PACKAGE).expect("package");
        Self {
            dir,
            exec: Arc::new(RecordingExec::new(host)),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn profile(&self, sha256: &str) -> PathBuf {
        let text = format!(
            r#"
name = "tinyagent"
service = "tinyagent"
[credentials]
required = ["token"]
[[package]]
format = "deb"
arch = "{arch}"
version = "1.0.0"
path = "{pkg}"
sha256 = "{sha256}"
[activate]
command = ["/usr/bin/tinyagent-activate", "--token={{{{ token }}}}"]
"#,
            arch = Arch::Amd64,
            pkg = self.path("tinyagent.deb").display(),
        );
        let path = self.path("tinyagent.toml");
        std::fs::write(&path, text).expect("profile");
        path
    }

    fn session(&self, command: &str, sha256: &str) -> Session {
        let profile = self.profile(sha256);
        let cli = Cli::try_parse_from([
            "install-agent",
            command,
            "--profile",
            &profile.display().to_string(),
            "--credentials-dir",
            &self.path("creds").display().to_string(),
            "--host-root",
            &self.path("root").display().to_string(),
            "--lock-timeout",
            "1",
        ])
        .expect("flags");
        let args = match &cli.command {
            Command::Plan(a) | Command::Install(a) | Command::Status(a) => a.clone(),
            Command::Uninstall { args, .. } => args.clone(),
        };
        let mut facts = facts_for("ID=debian\nVERSION_ID=12\n");
        facts.arch = Some(Arch::Amd64);
        facts.init = Init::Systemd;
        let root = HostRoot::open(self.path("root")).expect("host root");
        let exec: Box<dyn HostExec> = Box::new(Arc::clone(&self.exec));
        Session::assemble(&args, "run-1", root, facts, Some(exec)).expect("session")
    }

    fn real_sha(&self) -> String {
        hex(&Sha256::digest(PACKAGE))
    }

    fn store_record(&self, record: &StateRecord) {
        let root = HostRoot::open(self.path("root")).expect("root");
        StateStore::new(&root, "tinyagent")
            .save(record)
            .expect("save record");
    }

    fn load_record(&self) -> Option<StateRecord> {
        let root = HostRoot::open(self.path("root")).expect("root");
        StateStore::new(&root, "tinyagent").load().expect("load")
    }
}

fn fresh_host() -> FakeHost {
    FakeHost {
        installs: "1.0.0".into(),
        active_state: "inactive".into(),
        ..FakeHost::default()
    }
}

fn installed_host() -> FakeHost {
    FakeHost {
        installed: Some("1.0.0".into()),
        installs: "1.0.0".into(),
        unit_file_state: "enabled".into(),
        active_state: "active".into(),
        result: "success".into(),
        ..FakeHost::default()
    }
}

fn position(commands: &[String], needle: &str) -> usize {
    commands
        .iter()
        .position(|c| c.contains(needle))
        .unwrap_or_else(|| panic!("no command with {needle:?} in {commands:#?}"))
}

fn run_install(session: &Session) -> (u8, AgentReport) {
    let mut report = AgentReport::new("install", "tinyagent");
    let code = install::install(session, &mut report).expect("install runs");
    (code, report)
}

#[test]
fn fresh_install_runs_the_steps_in_order_then_a_rerun_only_observes() {
    let f = Fixture::new(fresh_host());
    let session = f.session("install", &f.real_sha());
    let (code, report) = run_install(&session);
    assert_eq!(code, exit::SUCCESS, "{report:#?}");
    assert_eq!(report.status, Outcome::Changed);
    assert!(report.installed && report.active && report.activated && report.registered);
    let cmds = f.exec.commands();
    let install = position(&cmds, "/usr/bin/apt-get install");
    let enable = position(&cmds, "systemctl enable");
    let activate = position(
        &cmds,
        "/bin/sh /var/lib/nodeguard/install-agent/staging/activate-run-1/activate.sh",
    );
    let start = position(&cmds, "systemctl start -- tinyagent.service");
    assert!(
        install < enable && enable < activate && activate < start,
        "{cmds:#?}"
    );
    let calls = f.exec.calls();
    let units: Vec<_> = calls.iter().filter_map(|c| c.unit.as_deref()).collect();
    assert_eq!(
        units,
        [
            "nodeguard-install-agent-tinyagent-package",
            "nodeguard-install-agent-tinyagent-activate"
        ]
    );
    assert!(
        !cmds.iter().any(|c| c.contains("orchestration-canary")),
        "credentials never in argv: {cmds:#?}"
    );
    let staging = f.path("root/var/lib/nodeguard/install-agent/staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging left behind: {left:?}");
    let record = f.load_record().expect("record");
    assert!(record.in_progress.is_none() && record.activation_digest.is_some());

    let before = f.exec.calls().len();
    let (code, report) = run_install(&session);
    assert_eq!((code, report.status), (exit::SUCCESS, Outcome::Converged));
    let rerun = &f.exec.commands()[before..];
    assert_eq!(
        rerun.len(),
        2,
        "a converged re-run only observes: {rerun:#?}"
    );
}

#[test]
fn a_run_killed_during_activation_does_not_block_the_next() {
    let mut host = installed_host();
    host.transient_units = vec![
        "nodeguard-install-agent-tinyagent-activate.service loaded active running nodeguard install-agent: nodeguard-install-agent-tinyagent-activate".into(),
    ];
    let f = Fixture::new(host);
    let session = f.session("install", &f.real_sha());
    let mut record = StateRecord::new("tinyagent", "tinyagent", "1.0.0", "deb", "", None);
    record.in_progress = Some(InProgress {
        action: "activate,start".into(),
        run_id: "killed".into(),
        unit: Some("nodeguard-install-agent-tinyagent-package".into()),
        started_at: 0,
    });
    f.store_record(&record);
    let (code, report) = run_install(&session);
    assert_eq!(code, exit::SUCCESS, "{report:#?}");
    let recover = report
        .steps
        .iter()
        .find(|s| s.name == "recover")
        .expect("recover step");
    assert!(
        recover
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("stopped the interrupted activation unit")),
        "{recover:?}"
    );
    let cmds = f.exec.commands();
    let stop = position(
        &cmds,
        "systemctl stop -- nodeguard-install-agent-tinyagent-activate.service",
    );
    let activate = position(&cmds, "activate.sh");
    assert!(stop < activate, "{cmds:#?}");
    assert!(f.load_record().expect("record").in_progress.is_none());
}

#[test]
fn a_unit_that_hit_its_start_limit_is_reset_before_it_is_started() {
    let mut host = installed_host();
    host.active_state = "failed".into();
    host.result = "start-limit-hit".into();
    let f = Fixture::new(host);
    let session = f.session("install", &f.real_sha());
    let values = session.values().expect("values").clone();
    let activation = crate::desired::activation_digest(&session.profile, &values).expect("digest");
    f.store_record(&StateRecord::new(
        "tinyagent",
        "tinyagent",
        "1.0.0",
        "deb",
        &crate::desired::config_digest(&[]),
        activation,
    ));
    let (code, report) = run_install(&session);
    assert_eq!(code, exit::SUCCESS, "{report:#?}");
    let start = report
        .steps
        .iter()
        .find(|s| s.name == "start")
        .expect("start");
    assert_eq!(start.status, StepStatus::Changed);
    assert!(
        start
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("StartLimitBurst") && d.contains("reset-failed")),
        "{start:?}"
    );
    let cmds = f.exec.commands();
    assert!(
        position(&cmds, "reset-failed -- tinyagent.service")
            < position(&cmds, "start -- tinyagent.service")
    );
}

#[test]
fn uninstall_stops_removes_with_a_separator_and_forgets() {
    let f = Fixture::new(installed_host());
    let session = f.session("uninstall", &f.real_sha());
    f.store_record(&StateRecord::new(
        "tinyagent",
        "tinyagent",
        "1.0.0",
        "deb",
        "",
        None,
    ));
    let mut report = AgentReport::new("uninstall", "tinyagent");
    let code = uninstall::uninstall(&session, &mut report, false).expect("uninstall runs");
    assert_eq!((code, report.status), (exit::SUCCESS, Outcome::Removed));
    let cmds = f.exec.commands();
    let remove = position(&cmds, "/usr/bin/apt-get remove");
    assert!(cmds[remove].ends_with(" -- tinyagent"), "{}", cmds[remove]);
    assert!(position(&cmds, "systemctl stop -- tinyagent.service") < remove);
    assert!(f.load_record().is_none());
}

#[test]
fn a_placeholder_sum_is_not_configured_and_touches_nothing() {
    let f = Fixture::new(fresh_host());
    let session = f.session("install", &"0".repeat(64));
    let (code, report) = run_install(&session);
    assert_eq!(
        (code, report.status),
        (exit::NOT_CONFIGURED, Outcome::NotConfigured)
    );
    assert!(report.not_configured[0].what.contains("placeholder"));
    assert!(report
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("bootstrap.packages")));
    assert!(!f
        .path("root")
        .join(STATE_DIR.trim_start_matches('/'))
        .exists());
    assert!(f.exec.calls().iter().all(|c| !c.mutating));
}

#[test]
fn a_missing_required_credential_is_not_configured() {
    let f = Fixture::new(fresh_host());
    std::fs::remove_file(f.path("creds/token")).expect("rm");
    let session = f.session("status", &f.real_sha());
    let mut report = AgentReport::new("status", "tinyagent");
    let code = crate::inspect::status(&session, &mut report).expect("status runs");
    assert_eq!(code, exit::NOT_CONFIGURED);
    assert_eq!(report.not_configured.len(), 1);
    assert_eq!(report.not_configured[0].set[0], "credentials.values.token");
}

#[test]
fn a_sha256_mismatch_writes_nothing_on_the_host_not_even_the_lock() {
    let f = Fixture::new(fresh_host());
    let session = f.session("install", &"1".repeat(64));
    let (code, report) = run_install(&session);
    assert_eq!((code, report.status), (exit::INTEGRITY, Outcome::Failed));
    let state: &Path = &f.path("root").join(STATE_DIR.trim_start_matches('/'));
    assert!(!state.exists(), "{} was created", state.display());
    assert!(f.exec.calls().iter().all(|c| !c.mutating));
}
