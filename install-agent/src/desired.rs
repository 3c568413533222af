//! The desired state: credential values read from the mounted Secret,
//! rendered config files, and the digests that make drift detectable.
//!
//! Credentials are read only from files (a Kubernetes Secret volume),
//! registered with the process-wide redactor the moment they are read, and
//! never put in argv, env, logs or reports. Digests cover path, mode, owner
//! and content, so a config edited by hand, chmod'ed or chown'ed on the
//! host is drift and gets rewritten.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::redact::register_secret;

use crate::fetch::hex;
use crate::profile::{PackageFormat, Profile};
use crate::template::{render_argv, render_text, Values};

/// Largest credential file read.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;
/// Largest config file compared.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The credentials read from the mounted Secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Template values: the profile's defaults with the credentials on top.
    pub values: Values,
    /// Required credentials that are absent or empty (canonical names).
    pub missing: Vec<String>,
}

/// Read the profile's credential files from `dir` into template values,
/// on top of the profile's non-secret defaults. A credential may be given
/// under its name or any of its aliases (both is an error naming both);
/// a value with a control character (a newline outside a `multiline`
/// credential, NUL, escape, …) is refused with an error naming the key,
/// never the value. Missing required credentials are listed, not errors:
/// the caller reports them as `not_configured`.
pub fn load_values(profile: &Profile, dir: Option<&Path>) -> Result<Credentials> {
    let mut creds = Credentials {
        values: profile.values.clone(),
        missing: Vec::new(),
    };
    for name in profile.credential_names() {
        let required = profile.credentials.required.iter().any(|r| r == name);
        let mut found: Option<(&str, String)> = None;
        if let Some(dir) = dir {
            for spelling in profile.credential_spellings(name) {
                let path = dir.join(spelling);
                let Some(value) = read_credential(&path)? else {
                    continue;
                };
                if let Some((first, _)) = &found {
                    bail!(
                        "credential {name} is given twice, as {first} and as {spelling} in {}; keep one",
                        dir.display()
                    );
                }
                found = Some((spelling, value));
            }
        }
        match found {
            Some((spelling, value)) => {
                register_secret(&value);
                check_value(name, spelling, &value, profile.is_multiline(name))?;
                creds.values.insert(name.to_owned(), value);
            }
            None if required => creds.missing.push(name.to_owned()),
            None => {}
        }
    }
    Ok(creds)
}

/// The error for missing required credentials.
pub fn missing_error(missing: &[String], dir: Option<&Path>) -> String {
    let where_ = dir.map_or_else(
        || "no --credentials-dir given".to_owned(),
        |d| format!("in {}", d.display()),
    );
    format!(
        "required credential file(s) missing or empty {where_}: {}",
        missing.join(", ")
    )
}

/// Refuse control characters: a newline would add lines to a rendered
/// config file (a setting the operator never wrote), NUL truncates argv.
fn check_value(name: &str, spelling: &str, value: &str, multiline: bool) -> Result<()> {
    let bad = value
        .chars()
        .find(|&c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    if let Some(c) = bad {
        let what = match c {
            '\n' => "a newline".to_owned(),
            '\r' => "a carriage return".to_owned(),
            '\0' => "a NUL byte".to_owned(),
            '\t' => "a tab".to_owned(),
            c => format!("control character U+{:04X}", u32::from(c)),
        };
        let file = if spelling == name {
            String::new()
        } else {
            format!(" (file {spelling})")
        };
        bail!(
            "credential {name}{file} holds {what}; refusing it (a credential value must be a single line without control characters)"
        );
    }
    Ok(())
}

/// A credential file's value without its trailing newline; `None` when the
/// file is absent or empty.
fn read_credential(path: &Path) -> Result<Option<String>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read credential file {}", path.display())))
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read credential file {}", path.display()))?;
    if !meta.is_file() {
        bail!("credential file {} is not a regular file", path.display());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read credential file {}", path.display()))?;
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        bail!(
            "credential file {} is larger than {MAX_CREDENTIAL_BYTES} bytes",
            path.display()
        );
    }
    // The error names the file, never the content.
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("credential file {} is not UTF-8", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_owned();
    Ok((!value.is_empty()).then_some(value))
}

/// A config file as it should be on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// Host path.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Content (may hold credentials: never log it).
    pub content: Vec<u8>,
}

/// Render the config files that apply to a host installing `format`.
pub fn render_configs(
    profile: &Profile,
    format: PackageFormat,
    values: &Values,
) -> Result<Vec<RenderedConfig>> {
    let mut out = Vec::new();
    for cfg in &profile.configs {
        if cfg.format.is_some_and(|f| f != format)
            || cfg.when.as_ref().is_some_and(|w| !values.contains_key(w))
        {
            continue;
        }
        let content = render_text(&cfg.template, values)
            .with_context(|| format!("rendering {}", cfg.path.display()))?;
        out.push(RenderedConfig {
            path: cfg.path.clone(),
            mode: cfg.mode_bits(),
            content: content.into_bytes(),
        });
    }
    Ok(out)
}

/// Paths of every config file the profile can write (all formats and
/// conditions): what uninstall removes.
pub fn all_config_paths(profile: &Profile) -> Vec<PathBuf> {
    profile.configs.iter().map(|c| c.path.clone()).collect()
}

/// Digest of a set of config files: path, mode, owner (root) and content.
pub fn config_digest(configs: &[RenderedConfig]) -> String {
    let mut hasher = Sha256::new();
    for c in configs {
        digest_entry(&mut hasher, &c.path, c.mode, 0, 0, &c.content);
    }
    hex(&hasher.finalize())
}

fn digest_entry(hasher: &mut Sha256, path: &Path, mode: u32, uid: u32, gid: u32, content: &[u8]) {
    hasher.update(path.as_os_str().as_encoded_bytes());
    hasher.update(format!("\0{mode:o}\0{uid}\0{gid}\0{}\0", content.len()).as_bytes());
    hasher.update(content);
}

/// The same digest over what the host has; `None` if any file is missing,
/// not a regular file, or unreadable.
pub fn observed_config_digest(root: &HostRoot, desired: &[RenderedConfig]) -> Option<String> {
    let mut hasher = Sha256::new();
    for c in desired {
        let meta = root.symlink_metadata(&c.path).ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        let content = root.read_limited(&c.path, MAX_CONFIG_BYTES).ok()?;
        digest_entry(
            &mut hasher,
            &c.path,
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            &content,
        );
    }
    Some(hex(&hasher.finalize()))
}

/// Digest of the rendered activation command (so a rotated credential
/// re-activates); `None` when the profile has no activation.
pub fn activation_digest(profile: &Profile, values: &Values) -> Result<Option<String>> {
    let Some(step) = &profile.activate else {
        return Ok(None);
    };
    let argv = render_argv(&step.command, values)?;
    let mut hasher = Sha256::new();
    for arg in &argv {
        hasher.update(arg.as_bytes());
        hasher.update([0u8]);
    }
    Ok(Some(hex(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
name = "tinyagent"
service = "tinyagent"
[credentials]
required = ["token"]
optional = ["proxy"]
[values]
server = "https://server.example"
[[package]]
format = "deb"
arch = "amd64"
version = "1.0.0"
path = "/p/a.deb"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[config]]
path = "/etc/tinyagent/agent.conf"
template = "token={{token}}\nserver={{server}}\nproxy={{proxy?}}\n"
[[config]]
path = "/etc/sysconfig/tinyagent"
format = "rpm"
template = "x=1\n"
[[config]]
path = "/etc/default/tinyagent-proxy"
when = "proxy"
template = "https_proxy={{proxy}}\n"
"#;

    #[test]
    fn renders_per_format_and_condition() {
        let p = Profile::parse(PROFILE).expect("profile");
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("token"), "s3cr3t-token\n").expect("write");
        let values = load_values(&p, Some(dir.path())).expect("values").values;
        let configs = render_configs(&p, PackageFormat::Deb, &values).expect("render");
        assert_eq!(configs.len(), 1, "rpm-only and proxy-only files skipped");
        assert_eq!(
            configs[0].content,
            b"token=s3cr3t-token\nserver=https://server.example\n"
        );
        assert_eq!(configs[0].mode, 0o600);
        assert!(nodeguard_common::redact::redact("x s3cr3t-token y").contains("***"));
    }

    #[test]
    fn missing_required_credential_is_listed_and_bad_values_name_the_key_not_the_value() {
        let p = Profile::parse(PROFILE).expect("profile");
        let dir = tempfile::tempdir().expect("tmp");
        let creds = load_values(&p, Some(dir.path())).expect("missing is not an error");
        assert_eq!(creds.missing, ["token"]);
        assert!(missing_error(&creds.missing, Some(dir.path())).contains("token"));
        for (content, what) in [
            ("zq9\0xw7\n", "a NUL byte"),
            ("zq9\nproxy=evil\n", "a newline"),
            ("zq9\x1b[2Jxw7", "U+001B"),
            ("zq9\rxw7\n", "a carriage return"),
        ] {
            fs::write(dir.path().join("token"), content).expect("write");
            let err = load_values(&p, Some(dir.path())).expect_err(what);
            let text = format!("{err:#}");
            assert!(
                text.contains("credential token") && text.contains(what),
                "{text}"
            );
            assert!(!text.contains("zq9") && !text.contains('\n'), "{text}");
        }
    }

    const ALIASED: &str = r#"
name = "q"
service = "q"
[credentials]
required = ["activation_id"]
optional = ["ca_cert_bundle"]
multiline = ["ca_cert_bundle"]
[credentials.aliases]
activation_id = ["ACTIVATION_ID"]
[[package]]
format = "deb"
arch = "amd64"
version = "1.0.0"
path = "/p/a.deb"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
[[config]]
path = "/etc/q/ca.crt"
when = "ca_cert_bundle"
template = "{{ ca_cert_bundle }}\n"
"#;

    #[test]
    fn either_spelling_of_an_aliased_credential_works_but_not_both() {
        let p = Profile::parse(ALIASED).expect("profile");
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("ACTIVATION_ID"), "alias-value\n").expect("write");
        let creds = load_values(&p, Some(dir.path())).expect("values");
        assert_eq!(creds.values["activation_id"], "alias-value");
        assert!(creds.missing.is_empty());
        fs::write(dir.path().join("activation_id"), "other-activation-id\n").expect("write");
        let err = format!("{:#}", load_values(&p, Some(dir.path())).expect_err("both"));
        assert!(
            err.contains("activation_id") && err.contains("ACTIVATION_ID"),
            "{err}"
        );
        assert!(!err.contains("alias-value"), "{err}");
        fs::remove_file(dir.path().join("ACTIVATION_ID")).expect("rm");
        assert_eq!(
            load_values(&p, Some(dir.path())).expect("values").values["activation_id"],
            "other-activation-id"
        );
    }

    #[test]
    fn a_multiline_credential_may_hold_newlines_only_in_config_files() {
        let p = Profile::parse(ALIASED).expect("profile");
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("activation_id"), "multiline-test-id\n").expect("write");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        fs::write(dir.path().join("ca_cert_bundle"), pem).expect("write");
        let values = load_values(&p, Some(dir.path())).expect("values").values;
        let configs = render_configs(&p, PackageFormat::Deb, &values).expect("render");
        assert_eq!(configs[0].content, pem.as_bytes());
        let in_argv =
            format!("{ALIASED}[activate]\ncommand = [\"/bin/x\", \"{{{{ ca_cert_bundle }}}}\"]\n");
        let err = Profile::parse(&in_argv).expect_err("multi-line in argv");
        assert!(format!("{err:#}").contains("multi-line"), "{err:#}");
    }

    #[test]
    fn observed_digest_matches_only_identical_mode_owner_and_content() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIP observed_digest_matches: files must be root-owned to match; needs root"
            );
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let root = HostRoot::open(dir.path()).expect("root");
        let want = vec![RenderedConfig {
            path: "/etc/a.conf".into(),
            mode: 0o600,
            content: b"x=1\n".to_vec(),
        }];
        assert_eq!(observed_config_digest(&root, &want), None);
        fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        nodeguard_common::atomic::write_file(dir.path().join("etc/a.conf"), b"x=1\n", 0o600)
            .expect("write");
        assert_eq!(
            observed_config_digest(&root, &want),
            Some(config_digest(&want))
        );
        nodeguard_common::atomic::write_file(dir.path().join("etc/a.conf"), b"x=1\n", 0o644)
            .expect("write");
        assert_ne!(
            observed_config_digest(&root, &want),
            Some(config_digest(&want))
        );
    }

    #[test]
    fn shipped_qualys_profile_takes_the_qualys_charts_upper_case_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/qualys-cloud-agent.toml");
        let p = Profile::load(&path).expect("shipped profile is valid");
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("ACTIVATION_ID"), "11111111-2222\n").expect("write");
        fs::write(dir.path().join("CUSTOMER_ID"), "33333333-4444\n").expect("write");
        fs::write(
            dir.path().join("SERVER_URI"),
            "https://qagpublic.example/CloudAgent/\n",
        )
        .expect("write");
        fs::write(dir.path().join("HTTPS_PROXY"), "http://proxy.corp:3128\n").expect("write");
        let creds = load_values(&p, Some(dir.path())).expect("values");
        assert!(creds.missing.is_empty());
        let argv = render_argv(
            &p.activate.as_ref().expect("activate").command,
            &creds.values,
        )
        .expect("argv");
        assert_eq!(
            argv[1..],
            [
                "ActivationId=11111111-2222",
                "CustomerId=33333333-4444",
                "ServerUri=https://qagpublic.example/CloudAgent/"
            ]
        );
        assert!(p.registered.is_some());
    }

    #[test]
    fn shipped_qualys_profile_renders_proxy_only_when_configured() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/qualys-cloud-agent.toml");
        let p = Profile::load(&path).expect("shipped profile is valid");
        assert_eq!(p.unit(), "qualys-cloud-agent.service");
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("activation_id"), "11111111-2222\n").expect("write");
        fs::write(dir.path().join("customer_id"), "33333333-4444\n").expect("write");
        let values = load_values(&p, Some(dir.path())).expect("values").values;
        assert!(render_configs(&p, PackageFormat::Rpm, &values)
            .expect("render")
            .is_empty());
        let argv =
            render_argv(&p.activate.as_ref().expect("activate").command, &values).expect("argv");
        assert_eq!(
            argv[1..],
            ["ActivationId=11111111-2222", "CustomerId=33333333-4444"]
        );

        fs::write(
            dir.path().join("https_proxy"),
            "https://user:pw@proxy.corp:3128\n",
        )
        .expect("write");
        let values = load_values(&p, Some(dir.path())).expect("values").values;
        let rpm = render_configs(&p, PackageFormat::Rpm, &values).expect("render");
        assert_eq!(rpm.len(), 1);
        assert_eq!(rpm[0].path, Path::new("/etc/sysconfig/qualys-cloud-agent"));
        assert!(String::from_utf8_lossy(&rpm[0].content)
            .contains("qualys_https_proxy=https://user:pw@proxy.corp:3128"));
        let deb = render_configs(&p, PackageFormat::Deb, &values).expect("render");
        assert_eq!(deb[0].path, Path::new("/etc/default/qualys-cloud-agent"));
        assert_eq!(deb[0].mode, 0o600);
    }
}
