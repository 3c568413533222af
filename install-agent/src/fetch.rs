//! Getting the package: download (ureq) or image path, sha256 verified
//! before anything touches the host, then staged on the host.
//!
//! Downloads are HTTPS only unless `--allow-http`, honour `HTTPS_PROXY` /
//! `NO_PROXY`, can trust a custom CA bundle instead of the built-in roots
//! (an internal mirror, a TLS-intercepting proxy), are retried with
//! exponential backoff on transient failures, and are capped in size. The
//! body streams into a temp file in the pod while being hashed; a mismatch
//! deletes it and fails with [`crate::exit::INTEGRITY`]. Staging then copies the
//! verified file into a fresh root-only directory on the host, hashing it
//! again on the way so a file swapped in between cannot be installed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use nodeguard_common::exit::ToolError;
use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::redact::redact;

use crate::profile::PackageEntry;
use crate::state::STAGING_DIR;

/// Download settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// PEM bundle replacing the built-in root certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Allow plain `http://` URLs.
    pub allow_http: bool,
    /// Largest package accepted.
    pub max_bytes: u64,
    /// Attempts for transient failures (at least 1).
    pub attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            allow_http: false,
            max_bytes: 2 * 1024 * 1024 * 1024,
            attempts: 4,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
        }
    }
}

/// A verified package file in the pod.
#[derive(Debug)]
pub struct Fetched {
    /// Where it is (an image path, or a temp file we own).
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Where it came from (URL redacted).
    pub source: String,
    /// Keeps a downloaded temp file alive; `None` for image paths.
    _temp: Option<tempfile::TempPath>,
}

/// Get the package of `entry` and verify its sha256.
pub fn fetch(entry: &PackageEntry, opts: &FetchOptions) -> Result<Fetched> {
    match (&entry.url, &entry.path) {
        (_, Some(path)) => {
            let (digest, bytes) = hash_file(path, opts.max_bytes)?;
            check_digest(&entry.sha256, &digest, &path.display().to_string())?;
            Ok(Fetched {
                path: path.clone(),
                bytes,
                source: path.display().to_string(),
                _temp: None,
            })
        }
        (Some(url), None) => download(url, &entry.sha256, opts),
        (None, None) => bail!("package entry has neither url nor path"),
    }
}

fn check_digest(expected: &str, actual: &str, what: &str) -> Result<()> {
    if expected != actual {
        bail!(ToolError::new(
            crate::exit::INTEGRITY,
            format!("sha256 mismatch for {what}: expected {expected}, got {actual}; refusing to install")
        ));
    }
    Ok(())
}

fn hash_file(path: &Path, max: u64) -> Result<(String, u64)> {
    let file =
        File::open(path).with_context(|| format!("cannot open package {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot stat package {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "package {} is {len} bytes, over the {max}-byte limit",
            path.display()
        );
    }
    let mut hasher = Sha256::new();
    let n = io::copy(&mut file.take(max + 1), &mut HashWriter(&mut hasher))
        .with_context(|| format!("reading package {}", path.display()))?;
    Ok((hex(&hasher.finalize()), n))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest CA bundle read (the Mozilla bundle is about 220 KiB).
const MAX_CA_BUNDLE_BYTES: u64 = 4 * 1024 * 1024;

/// Read a `--ca-bundle`: a regular file, size-capped.
fn read_ca_bundle(bundle: &Path) -> Result<Vec<u8>> {
    let file = File::open(bundle)
        .with_context(|| format!("cannot read CA bundle {}", bundle.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read CA bundle {}", bundle.display()))?;
    if !meta.is_file() {
        bail!("CA bundle {} is not a regular file", bundle.display());
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_BUNDLE_BYTES + 1)
        .read_to_end(&mut pem)
        .with_context(|| format!("cannot read CA bundle {}", bundle.display()))?;
    if pem.len() as u64 > MAX_CA_BUNDLE_BYTES {
        bail!(
            "CA bundle {} is larger than {MAX_CA_BUNDLE_BYTES} bytes",
            bundle.display()
        );
    }
    Ok(pem)
}

fn agent(opts: &FetchOptions) -> Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(bundle) = &opts.ca_bundle {
        let pem = read_ca_bundle(bundle)?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .with_context(|| format!("invalid PEM in CA bundle {}", bundle.display()))?;
        if certs.is_empty() {
            bail!("CA bundle {} holds no certificate", bundle.display());
        }
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .proxy(ureq::Proxy::try_from_env())
        .https_only(!opts.allow_http)
        .timeout_global(Some(opts.timeout))
        .http_status_as_error(false)
        .build();
    Ok(config.into())
}

fn download(url: &str, expected: &str, opts: &FetchOptions) -> Result<Fetched> {
    let shown = redact(url);
    if !url.starts_with("https://") && !opts.allow_http {
        bail!("refusing plain-HTTP package URL {shown} (pass --allow-http to permit it)");
    }
    let agent = agent(opts)?;
    let mut delay = opts.backoff;
    let mut last_err = None;
    for attempt in 1..=opts.attempts.max(1) {
        match download_once(&agent, url, opts.max_bytes) {
            Ok((temp, digest, bytes)) => {
                check_digest(expected, &digest, &shown)?;
                log::info!("downloaded {shown} ({bytes} bytes, attempt {attempt})");
                return Ok(Fetched {
                    path: temp.to_path_buf(),
                    bytes,
                    source: shown,
                    _temp: Some(temp),
                });
            }
            Err(Attempt::Permanent(e)) => return Err(e),
            Err(Attempt::Transient(e)) => {
                log::warn!(
                    "download of {shown} failed (attempt {attempt}): {}",
                    redact(&format!("{e:#}"))
                );
                last_err = Some(e);
                if attempt < opts.attempts {
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no download attempt made"))).with_context(
        || {
            format!(
                "downloading {shown} failed after {} attempts",
                opts.attempts
            )
        },
    )
}

enum Attempt {
    Transient(anyhow::Error),
    Permanent(anyhow::Error),
}

fn download_once(
    agent: &ureq::Agent,
    url: &str,
    max: u64,
) -> Result<(tempfile::TempPath, String, u64), Attempt> {
    let shown = redact(url);
    let response = agent.get(url).call().map_err(|e| {
        let permanent = matches!(
            e,
            ureq::Error::RequireHttpsOnly(_) | ureq::Error::BadUri(_) | ureq::Error::Tls(_)
        );
        let err = anyhow::anyhow!("GET {shown}: {}", redact(&e.to_string()));
        if permanent {
            Attempt::Permanent(err)
        } else {
            Attempt::Transient(err)
        }
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        let err = anyhow::anyhow!("GET {shown}: HTTP {status}");
        return Err(if status == 429 || status >= 500 {
            Attempt::Transient(err)
        } else {
            Attempt::Permanent(err)
        });
    }
    let too_big = |n: u64| {
        Attempt::Permanent(anyhow::anyhow!(
            "GET {shown}: body of {n} bytes is over the {max}-byte limit"
        ))
    };
    if let Some(len) = response.body().content_length() {
        if len > max {
            return Err(too_big(len));
        }
    }
    let temp = tempfile::Builder::new()
        .prefix("nodeguard-package.")
        .tempfile()
        .map_err(|e| {
            Attempt::Permanent(
                anyhow::Error::new(e).context("creating a temp file for the download"),
            )
        })?;
    let (file, path) = temp.into_parts();
    let mut writer = io::BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut reader = response.into_body().into_reader().take(max + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            Attempt::Transient(anyhow::anyhow!(
                "GET {shown}: reading body: {}",
                redact(&e.to_string())
            ))
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            return Err(too_big(total));
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n]).map_err(|e| {
            Attempt::Permanent(anyhow::Error::new(e).context("writing the download to a temp file"))
        })?;
    }
    writer.flush().map_err(|e| {
        Attempt::Permanent(anyhow::Error::new(e).context("writing the download to a temp file"))
    })?;
    Ok((path, hex(&hasher.finalize()), total))
}

/// A package staged on the host; the directory is removed on drop.
#[derive(Debug)]
pub struct Staged {
    /// The real directory (under the host root).
    real_dir: PathBuf,
    /// The package's path as the host sees it.
    pub host_path: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.real_dir) {
            log::warn!(
                "could not remove staging directory {}: {e}",
                self.real_dir.display()
            );
        }
    }
}

/// Copy a verified package into a fresh root-only staging directory on the
/// host, verifying the copy's sha256 on the way.
pub fn stage(
    root: &HostRoot,
    fetched: &Fetched,
    expected: &str,
    run_id: &str,
    file_name: &str,
) -> Result<Staged> {
    let host_dir = Path::new(STAGING_DIR).join(run_id);
    let parent = root.resolve(STAGING_DIR)?;
    nodeguard_common::atomic::ensure_dir(&parent, 0o700)?;
    let real_dir = parent.join(run_id);
    // Exclusive create: a directory that already exists (someone else's, or
    // a link planted in our place) is never reused.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&real_dir)
        .with_context(|| format!("creating staging directory {}", real_dir.display()))?;
    let staged = Staged {
        real_dir: real_dir.clone(),
        host_path: host_dir.join(file_name),
    };
    let mut src =
        File::open(&fetched.path).with_context(|| format!("opening {}", fetched.path.display()))?;
    let dst_path = real_dir.join(file_name);
    let dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&dst_path)
        .with_context(|| format!("creating {}", dst_path.display()))?;
    let mut hasher = Sha256::new();
    let mut writer = io::BufWriter::new(dst);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src
            .read(&mut buf)
            .with_context(|| format!("reading {}", fetched.path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .with_context(|| format!("writing {}", dst_path.display()))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", dst_path.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", dst_path.display()))?;
    check_digest(
        expected,
        &hex(&hasher.finalize()),
        &format!("staged copy of {}", fetched.source),
    )?;
    Ok(staged)
}

/// Remove staging directories left by killed runs.
pub fn clean_stale_staging(root: &HostRoot) -> Result<usize> {
    let dir = root.resolve(STAGING_DIR)?;
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("listing {}", dir.display()))),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        // symlink_metadata: never follow a planted link out of the directory.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
            removed += 1;
        } else {
            fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Arch, PackageFormat};

    fn entry(path: &Path, sha256: &str) -> PackageEntry {
        PackageEntry {
            format: PackageFormat::Deb,
            arch: Arch::Amd64,
            version: "1".into(),
            url: None,
            path: Some(path.to_path_buf()),
            sha256: sha256.into(),
            name: None,
        }
    }

    const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    #[test]
    fn path_source_is_verified_and_mismatch_refused_with_integrity_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pkg = dir.path().join("a.deb");
        fs::write(&pkg, b"hello\n").expect("write");
        fetch(&entry(&pkg, HELLO_SHA256), &FetchOptions::default()).expect("verified");
        let err =
            fetch(&entry(&pkg, &"0".repeat(64)), &FetchOptions::default()).expect_err("mismatch");
        assert_eq!(
            nodeguard_common::exit::code_for(&err),
            crate::exit::INTEGRITY,
            "{err:#}"
        );
    }

    #[test]
    fn a_ca_bundle_must_be_a_regular_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = read_ca_bundle(dir.path()).expect_err("a directory");
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        assert!(read_ca_bundle(Path::new("/dev/zero")).is_err());
    }

    #[test]
    fn plain_http_is_refused_without_opt_in() {
        let mut e = entry(Path::new("/x"), HELLO_SHA256);
        e.path = None;
        e.url = Some("http://user:pw@mirror.invalid/a.deb".into());
        let err = fetch(&e, &FetchOptions::default()).expect_err("http");
        let msg = format!("{err:#}");
        assert!(msg.contains("plain-HTTP") && !msg.contains("pw@"), "{msg}");
    }

    #[test]
    fn staging_copies_into_fresh_root_only_dir_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = dir.path().join("host");
        fs::create_dir(&host).expect("mkdir");
        let root = HostRoot::open(&host).expect("root");
        let pkg = dir.path().join("a.deb");
        fs::write(&pkg, b"hello\n").expect("write");
        let fetched = fetch(&entry(&pkg, HELLO_SHA256), &FetchOptions::default()).expect("fetch");
        let staged = stage(&root, &fetched, HELLO_SHA256, "run1", "a.deb").expect("stage");
        let real = host.join("var/lib/nodeguard/install-agent/staging/run1");
        let mode = |p: &Path| {
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(p).expect("meta").permissions())
                & 0o777
        };
        assert_eq!(mode(&real), 0o700);
        assert_eq!(mode(&real.join("a.deb")), 0o600);
        assert_eq!(
            staged.host_path,
            Path::new("/var/lib/nodeguard/install-agent/staging/run1/a.deb")
        );
        assert!(
            stage(&root, &fetched, HELLO_SHA256, "run1", "a.deb").is_err(),
            "existing dir is never reused"
        );
        drop(staged);
        assert!(!real.exists());
    }
}
