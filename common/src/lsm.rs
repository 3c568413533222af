//! Which Linux Security Module denied us, in one line.
//!
//! Opening `/proc/<pid>/ns/*` or following `/proc/<pid>/root` of another
//! process is a ptrace-read access check in the kernel
//! (`ptrace_may_access(…, PTRACE_MODE_READ_FSCREDS)`): the capabilities
//! (`CAP_SYS_PTRACE`) are one part of it, the LSM hook is the other. A
//! container confined by the runtime's default AppArmor profile
//! (`cri-containerd.apparmor.d`, `crio-default`, `docker-default`) may only
//! read peers under the same profile, and SELinux's `container_t` may not
//! read `init_t`, so the open fails with `EACCES` (or `EPERM`) although the
//! capabilities are held. The raw "Permission denied" says nothing of this;
//! [`diagnose`] turns it into one line naming the LSM that is most likely
//! responsible and the chart value that fixes it.
//!
//! Detection reads `/sys/kernel/security/lsm` (the initialised LSMs, when
//! securityfs is visible) and this process's own label
//! (`/proc/self/attr/apparmor/current`, else `/proc/self/attr/current`).
//! Files are read through [`LsmSource`] so tests can fake them.

use std::io;
use std::path::Path;

/// Initialised LSMs, comma-separated (securityfs).
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";
/// This process's AppArmor label on kernels with LSM stacking.
pub const APPARMOR_CURRENT: &str = "/proc/self/attr/apparmor/current";
/// This process's label under the "major" LSM.
pub const ATTR_CURRENT: &str = "/proc/self/attr/current";
/// This process's status (effective capabilities).
pub const SELF_STATUS: &str = "/proc/self/status";

/// `CAP_SYS_PTRACE`'s bit number.
const CAP_SYS_PTRACE: u32 = 19;

/// The most this module reads of any of its files.
const MAX_READ: u64 = 4096;

/// Where the LSM facts come from.
pub trait LsmSource {
    /// The contents of `path`, or `None` when it cannot be read.
    fn read(&self, path: &str) -> Option<String>;
}

/// The running system's files.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemFiles;

impl LsmSource for SystemFiles {
    fn read(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let mut buf = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX_READ)
            .read_to_end(&mut buf)
            .ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// An LSM that can deny a ptrace-read access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lsm {
    /// AppArmor, with this process's profile when known
    /// (`cri-containerd.apparmor.d (enforce)`).
    AppArmor(Option<String>),
    /// SELinux, with this process's context when known
    /// (`system_u:system_r:container_t:s0:c1,c2`).
    SeLinux(Option<String>),
}

impl Lsm {
    /// Whether this process runs unconfined under the LSM (then it is not
    /// the one denying us).
    pub fn unconfined(&self) -> bool {
        match self {
            Lsm::AppArmor(Some(label)) => label == "unconfined" || label.starts_with("unconfined "),
            Lsm::SeLinux(Some(context)) => matches!(
                selinux_type(context),
                Some("spc_t" | "unconfined_t" | "kernel_t")
            ),
            _ => false,
        }
    }
}

/// The chart values that lift the confinement, passed by the caller
/// (each pod has its own: `bootstrap.*`, `benchNode.*`, `scanImages.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartValues<'a> {
    /// The AppArmor profile value, e.g. `bootstrap.appArmorProfile`.
    pub apparmor: &'a str,
    /// The SELinux type value, e.g. `bootstrap.seLinuxType`.
    pub selinux: &'a str,
}

/// The bootstrap (install-agent) pod's values.
pub const BOOTSTRAP: ChartValues<'static> = ChartValues {
    apparmor: "bootstrap.appArmorProfile",
    selinux: "bootstrap.seLinuxType",
};

impl ChartValues<'_> {
    fn apparmor_fix(&self) -> String {
        format!("{}=Unconfined", self.apparmor)
    }

    fn selinux_fix(&self) -> String {
        format!("{}=spc_t", self.selinux)
    }
}

/// The active LSM that can deny a ptrace-read check, if one can be told.
pub fn active_lsm(src: &dyn LsmSource) -> Option<Lsm> {
    let listed: Vec<String> = src
        .read(LSM_LIST)
        .map(|s| {
            s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let apparmor_listed = listed.iter().any(|m| m == "apparmor");
    let selinux_listed = listed.iter().any(|m| m == "selinux");
    let apparmor_label = src.read(APPARMOR_CURRENT).and_then(|s| clean_label(&s));
    let current = src.read(ATTR_CURRENT).and_then(|s| clean_label(&s));
    let selinux_context = current.as_deref().filter(|c| looks_like_selinux(c));
    let apparmor_current = current.as_deref().filter(|c| !looks_like_selinux(c));

    match (apparmor_listed, selinux_listed) {
        (true, false) => Some(Lsm::AppArmor(
            apparmor_label.or_else(|| apparmor_current.map(str::to_owned)),
        )),
        (false, true) => Some(Lsm::SeLinux(selinux_context.map(str::to_owned))),
        // Both listed (stacking) or the list is unreadable (no securityfs in
        // the container): decide from this process's own label.
        _ => {
            if let Some(context) = selinux_context {
                Some(Lsm::SeLinux(Some(context.to_owned())))
            } else if let Some(label) = apparmor_label {
                Some(Lsm::AppArmor(Some(label)))
            } else if apparmor_listed {
                Some(Lsm::AppArmor(apparmor_current.map(str::to_owned)))
            } else if selinux_listed {
                Some(Lsm::SeLinux(None))
            } else {
                // A label without the list: AppArmor labels look like
                // `profile (mode)` or `unconfined`.
                apparmor_current.map(|l| Lsm::AppArmor(Some(l.to_owned())))
            }
        }
    }
}

/// Whether this process holds `CAP_SYS_PTRACE` in its effective set;
/// `None` when `/proc/self/status` cannot be read or parsed.
pub fn has_cap_sys_ptrace(src: &dyn LsmSource) -> Option<bool> {
    let status = src.read(SELF_STATUS)?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << CAP_SYS_PTRACE) != 0)
}

/// Whether an error is the kind an LSM returns for a denied access check.
pub fn is_denial(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(nix::libc::EACCES | nix::libc::EPERM)
    ) || err.kind() == io::ErrorKind::PermissionDenied
}

/// One line for an `EACCES`/`EPERM` on opening `path` (a `/proc/<pid>/ns/*`
/// or `/proc/<pid>/root`): which LSM likely denied it and the chart value
/// that fixes it. `None` when the error is not a denial.
pub fn diagnose(path: &Path, err: &io::Error, values: &ChartValues<'_>) -> Option<String> {
    diagnose_with(&SystemFiles, path, err, values)
}

/// [`diagnose`] with the LSM facts read from `src`.
pub fn diagnose_with(
    src: &dyn LsmSource,
    path: &Path,
    err: &io::Error,
    values: &ChartValues<'_>,
) -> Option<String> {
    if !is_denial(err) {
        return None;
    }
    // An error re-wrapped with a message has no errno left: name its kind.
    let cause = if err.raw_os_error().is_some() {
        err.to_string()
    } else {
        err.kind().to_string()
    };
    let what = format!("cannot open {}: {cause}", path.display());
    if has_cap_sys_ptrace(src) == Some(false) {
        // Without CAP_SYS_PTRACE the kernel's own capability check refuses
        // first (PID 1 holds capabilities we do not): not an LSM.
        return Some(format!(
            "{what}: this container lacks CAP_SYS_PTRACE, which reading another process's namespaces and root needs; add it to the container's capabilities"
        ));
    }
    let line = match active_lsm(src).filter(|lsm| !lsm.unconfined()) {
        Some(Lsm::AppArmor(label)) => format!(
            "{what}: AppArmor likely denied it (this container runs under profile {}, which may not read processes outside it); set the chart value {}",
            label.map_or_else(|| "unknown".to_owned(), |l| format!("'{l}'")),
            values.apparmor_fix()
        ),
        Some(Lsm::SeLinux(context)) => format!(
            "{what}: SELinux likely denied it (this container runs as {}, which may not read the host's processes); set the chart value {}",
            context
                .as_deref()
                .and_then(selinux_type)
                .map_or_else(|| "a confined type".to_owned(), |t| format!("type {t}")),
            values.selinux_fix()
        ),
        None => format!(
            "{what}: an LSM (AppArmor or SELinux) likely denied it; set the chart value {} (AppArmor) or {} (SELinux)",
            values.apparmor_fix(),
            values.selinux_fix()
        ),
    };
    Some(line)
}

/// [`diagnose`] for an error chain: finds the first I/O error in it.
pub fn diagnose_chain(
    path: &Path,
    err: &anyhow::Error,
    values: &ChartValues<'_>,
) -> Option<String> {
    err.chain()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .and_then(|io| diagnose(path, io, values))
}

fn clean_label(raw: &str) -> Option<String> {
    let label = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!label.is_empty() && !label.chars().any(char::is_control)).then(|| label.to_owned())
}

/// `user:role:type:level…` (the level may itself contain colons).
fn looks_like_selinux(label: &str) -> bool {
    !label.contains(' ') && label.split(':').count() >= 3
}

fn selinux_type(context: &str) -> Option<&str> {
    context.split(':').nth(2).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Fake(HashMap<&'static str, &'static str>);

    impl Fake {
        fn with(mut self, path: &'static str, contents: &'static str) -> Self {
            self.0.insert(path, contents);
            self
        }
    }

    impl LsmSource for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.0.get(path).map(|s| (*s).to_owned())
        }
    }

    fn eacces() -> io::Error {
        io::Error::from_raw_os_error(nix::libc::EACCES)
    }

    fn ns() -> &'static Path {
        Path::new("/proc/1/ns/mnt")
    }

    #[test]
    fn containerd_apparmor_profile_names_apparmor_and_the_value() {
        let src = Fake::default()
            .with(LSM_LIST, "lockdown,capability,landlock,yama,apparmor\n")
            .with(APPARMOR_CURRENT, "cri-containerd.apparmor.d (enforce)\n");
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("/proc/1/ns/mnt"), "{line}");
        assert!(line.contains("AppArmor likely denied it"), "{line}");
        assert!(line.contains("cri-containerd.apparmor.d"), "{line}");
        assert!(
            line.contains("bootstrap.appArmorProfile=Unconfined"),
            "{line}"
        );
        assert!(!line.contains("SELinux"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }

    #[test]
    fn selinux_container_t_names_selinux_and_the_value() {
        let src = Fake::default()
            .with(LSM_LIST, "capability,yama,selinux,bpf")
            .with(ATTR_CURRENT, "system_u:system_r:container_t:s0:c12,c34\0");
        let err = io::Error::from_raw_os_error(nix::libc::EPERM);
        let line =
            diagnose_with(&src, Path::new("/proc/1/root"), &err, &BOOTSTRAP).expect("a denial");
        assert!(line.contains("SELinux likely denied it"), "{line}");
        assert!(line.contains("type container_t"), "{line}");
        assert!(line.contains("bootstrap.seLinuxType=spc_t"), "{line}");
        assert!(!line.contains("AppArmor"), "{line}");
    }

    #[test]
    fn unknown_lsm_names_both_values() {
        let line = diagnose_with(&Fake::default(), ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("an LSM (AppArmor or SELinux)"), "{line}");
        assert!(
            line.contains("bootstrap.appArmorProfile=Unconfined"),
            "{line}"
        );
        assert!(line.contains("bootstrap.seLinuxType=spc_t"), "{line}");
    }

    #[test]
    fn the_caller_chooses_the_chart_values() {
        let values = ChartValues {
            apparmor: "benchNode.appArmorProfile",
            selinux: "benchNode.seLinuxType",
        };
        let src = Fake::default().with(LSM_LIST, "apparmor");
        let line = diagnose_with(&src, ns(), &eacces(), &values).expect("a denial");
        assert!(
            line.contains("benchNode.appArmorProfile=Unconfined"),
            "{line}"
        );
    }

    #[test]
    fn unconfined_process_does_not_blame_its_lsm() {
        let src = Fake::default()
            .with(LSM_LIST, "capability,apparmor")
            .with(APPARMOR_CURRENT, "unconfined\n");
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("an LSM (AppArmor or SELinux)"), "{line}");
        let src = Fake::default()
            .with(LSM_LIST, "selinux")
            .with(ATTR_CURRENT, "system_u:system_r:spc_t:s0");
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("an LSM (AppArmor or SELinux)"), "{line}");
    }

    #[test]
    fn without_securityfs_the_label_decides() {
        // securityfs is usually not mounted in a container.
        let src = Fake::default().with(ATTR_CURRENT, "system_u:system_r:container_t:s0");
        assert_eq!(
            active_lsm(&src),
            Some(Lsm::SeLinux(Some(
                "system_u:system_r:container_t:s0".into()
            )))
        );
        let src = Fake::default().with(ATTR_CURRENT, "crio-default (enforce)");
        assert_eq!(
            active_lsm(&src),
            Some(Lsm::AppArmor(Some("crio-default (enforce)".into())))
        );
        let src = Fake::default().with(APPARMOR_CURRENT, "docker-default (enforce)");
        assert!(matches!(active_lsm(&src), Some(Lsm::AppArmor(_))));
        assert_eq!(active_lsm(&Fake::default()), None);
    }

    #[test]
    fn stacked_list_prefers_the_process_label() {
        let src = Fake::default()
            .with(LSM_LIST, "capability,selinux,apparmor")
            .with(ATTR_CURRENT, "system_u:system_r:container_t:s0");
        assert!(matches!(active_lsm(&src), Some(Lsm::SeLinux(_))));
    }

    #[test]
    fn a_missing_cap_sys_ptrace_is_named_instead_of_an_lsm() {
        let src = Fake::default()
            .with(LSM_LIST, "apparmor")
            .with(SELF_STATUS, "Name:\tx\nCapEff:\t00000000a80425fb\n");
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("lacks CAP_SYS_PTRACE"), "{line}");
        let src = Fake::default()
            .with(LSM_LIST, "apparmor")
            .with(SELF_STATUS, "CapEff:\t00000000a80c25fb\n");
        assert_eq!(has_cap_sys_ptrace(&src), Some(true));
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(line.contains("AppArmor likely denied it"), "{line}");
    }

    #[test]
    fn a_rewrapped_error_still_counts_as_a_denial() {
        let err = io::Error::new(io::ErrorKind::PermissionDenied, "host root /proc/1/root: x");
        let line = diagnose_with(
            &Fake::default(),
            Path::new("/proc/1/root"),
            &err,
            &BOOTSTRAP,
        )
        .expect("a denial");
        assert!(
            line.contains("cannot open /proc/1/root: permission denied"),
            "{line}"
        );
    }

    #[test]
    fn other_errors_are_not_diagnosed() {
        let src = Fake::default().with(LSM_LIST, "apparmor");
        let enoent = io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert_eq!(diagnose_with(&src, ns(), &enoent, &BOOTSTRAP), None);
    }

    #[test]
    fn a_hostile_label_is_not_echoed() {
        let src = Fake::default()
            .with(LSM_LIST, "apparmor")
            .with(APPARMOR_CURRENT, "evil\nsecond line (enforce)");
        let line = diagnose_with(&src, ns(), &eacces(), &BOOTSTRAP).expect("a denial");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn chain_finds_the_io_error_under_context() {
        let err = anyhow::Error::new(eacces()).context("cannot open /proc/1/ns/ipc");
        let line = diagnose_chain(Path::new("/proc/1/ns/ipc"), &err, &BOOTSTRAP);
        assert!(line.is_some_and(|l| l.contains("/proc/1/ns/ipc")));
        let err = anyhow::anyhow!("no io error here");
        assert_eq!(diagnose_chain(ns(), &err, &BOOTSTRAP), None);
    }

    #[test]
    fn system_files_read_does_not_panic() {
        // Whatever this machine has, detection must not fail.
        let _ = active_lsm(&SystemFiles);
    }
}
