//! The test agent, built for real with `dpkg-deb` and `rpmbuild`, its
//! profile, and a local HTTPS server (self-signed CA) to download it from.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness;

/// The agent: records its environment (to prove host commands get a clean
/// one) and writes a heartbeat once its config holds a token.
const AGENT: &str = r#"#!/bin/sh
# Crash at once on demand, to drive the unit into its start limit.
if [ -e /etc/tinyagent-crash ]; then exit 1; fi
mkdir -p /var/lib/tinyagent
env > /var/lib/tinyagent/agent-env
while :; do
  if grep -q '^token=' /etc/tinyagent/agent.conf 2>/dev/null; then
    echo "configured @VERSION@" > /var/lib/tinyagent/heartbeat
  fi
  sleep 0.2
done
"#;

/// The activation tool: takes the token as an argument, as vendor tools do
/// (and takes its time on demand, to kill a run during activation).
const ACTIVATE: &str = r#"#!/bin/sh
mkdir -p /var/lib/tinyagent
env > /var/lib/tinyagent/activate-env
if [ -e /etc/tinyagent-slow-activate ]; then sleep 60; fi
case "$1" in --token=?*) echo activated > /var/lib/tinyagent/activated ;; *) exit 2 ;; esac
"#;

const UNIT: &str = "[Unit]
Description=nodeguard test agent

[Service]
ExecStart=/usr/bin/tinyagent
Restart=always

[Install]
WantedBy=multi-user.target
";

/// A slow maintainer script on demand, to kill a run mid-install.
const POSTINST: &str = "#!/bin/sh
set -e
if [ -e /etc/tinyagent-slow-postinst ]; then sleep 4; fi
exit 0
";

/// `sha256sum` of a file.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Build `tinyagent_<version>_all.deb` in `dir`; returns (path, sha256).
pub fn build_deb(dir: &Path, version: &str) -> (PathBuf, String) {
    let root = dir.join(format!("deb-{version}"));
    write_exec(
        &root.join("usr/bin/tinyagent"),
        &AGENT.replace("@VERSION@", version),
    );
    write_exec(&root.join("usr/bin/tinyagent-activate"), ACTIVATE);
    fs::create_dir_all(root.join("lib/systemd/system")).expect("mkdir");
    fs::write(root.join("lib/systemd/system/tinyagent.service"), UNIT).expect("unit");
    write_exec(&root.join("DEBIAN/postinst"), POSTINST);
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: tinyagent\nVersion: {version}\nArchitecture: all\nMaintainer: nodeguard tests <dev@nodeguard.invalid>\n\
             Depends: procps\nDescription: nodeguard test agent\n"
        ),
    )
    .expect("control");
    let deb = dir.join(format!("tinyagent_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg("--build")
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum = sha256(&deb);
    (deb, sum)
}

/// The Qualys stand-in's activation tool: the vendor's
/// `qualys-cloud-agent.sh ActivationId=… CustomerId=… [ServerUri=…]`
/// interface, writing the agent config the way the vendor tool does.
const QUALYS_ACTIVATE: &str = r#"#!/bin/sh
set -e
conf=/etc/qualys/cloud-agent/qualys-cloud-agent.conf
mkdir -p /etc/qualys/cloud-agent
umask 077
: > "$conf.new"
for arg in "$@"; do
  case "$arg" in
    ActivationId=?*|CustomerId=?*|ServerUri=?*) echo "$arg" >> "$conf.new" ;;
    *) echo "unknown argument" >&2; exit 2 ;;
  esac
done
grep -q '^ActivationId=' "$conf.new" && grep -q '^CustomerId=' "$conf.new" || { echo "ActivationId and CustomerId are required" >&2; exit 2; }
mv "$conf.new" "$conf"
"#;

/// The Qualys stand-in's agent: once activated it "registers" (writes the
/// host id the platform would hand out).
const QUALYS_AGENT: &str = r#"#!/bin/sh
while :; do
  if grep -q '^ActivationId=' /etc/qualys/cloud-agent/qualys-cloud-agent.conf 2>/dev/null \
     && [ ! -s /etc/qualys/hostid ]; then
    sleep 1
    echo "standin-host-id-0001" > /etc/qualys/hostid
  fi
  sleep 0.2
done
"#;

const QUALYS_UNIT: &str = "[Unit]
Description=Qualys Cloud Agent (nodeguard test stand-in)

[Service]
ExecStart=/usr/local/qualys/cloud-agent/bin/qualys-cloud-agent
Restart=always

[Install]
WantedBy=multi-user.target
";

/// Build a stand-in `qualys-cloud-agent` .deb implementing the interface
/// the shipped Qualys profile drives (activation tool, service, config
/// file, host id); returns (path, sha256).
pub fn build_qualys_standin_deb(dir: &Path, version: &str) -> (PathBuf, String) {
    let root = dir.join(format!("qualys-deb-{version}"));
    let bin = root.join("usr/local/qualys/cloud-agent/bin");
    write_exec(&bin.join("qualys-cloud-agent.sh"), QUALYS_ACTIVATE);
    write_exec(&bin.join("qualys-cloud-agent"), QUALYS_AGENT);
    fs::create_dir_all(root.join("lib/systemd/system")).expect("mkdir");
    fs::write(
        root.join("lib/systemd/system/qualys-cloud-agent.service"),
        QUALYS_UNIT,
    )
    .expect("unit");
    fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: qualys-cloud-agent\nVersion: {version}\nArchitecture: all\nMaintainer: nodeguard tests <dev@nodeguard.invalid>\n\
             Description: Qualys Cloud Agent stand-in for nodeguard tests\n"
        ),
    )
    .expect("control");
    let deb = dir.join(format!("qualys-cloud-agent_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg("--build")
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum = sha256(&deb);
    (deb, sum)
}

/// Build `tinyagent-<version>-1.noarch.rpm` in `dir`; returns (path, sha256).
pub fn build_rpm(dir: &Path, version: &str) -> (PathBuf, String) {
    let top = dir.join(format!("rpm-{version}"));
    let sources = top.join("SOURCES");
    write_exec(
        &sources.join("tinyagent"),
        &AGENT.replace("@VERSION@", version),
    );
    write_exec(&sources.join("tinyagent-activate"), ACTIVATE);
    fs::write(sources.join("tinyagent.service"), UNIT).expect("unit");
    // No scriptlets and no automatic requirements: the package installs
    // into an empty rpm database (the node's userland is Debian's).
    let spec = "Name: tinyagent\nVersion: %{ver}\nRelease: 1\nSummary: nodeguard test agent\nLicense: Apache-2.0\n\
                BuildArch: noarch\nAutoReqProv: no\n\n%description\nnodeguard test agent\n\n%install\n\
                mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib/systemd/system\n\
                install -m 0755 %{_sourcedir}/tinyagent %{buildroot}/usr/bin/tinyagent\n\
                install -m 0755 %{_sourcedir}/tinyagent-activate %{buildroot}/usr/bin/tinyagent-activate\n\
                install -m 0644 %{_sourcedir}/tinyagent.service %{buildroot}/usr/lib/systemd/system/tinyagent.service\n\n\
                %files\n/usr/bin/tinyagent\n/usr/bin/tinyagent-activate\n/usr/lib/systemd/system/tinyagent.service\n";
    let spec_path = top.join("tinyagent.spec");
    fs::write(&spec_path, spec).expect("spec");
    let out = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("ver {version}"))
        .args(["--nodeps", "-bb"])
        .arg(&spec_path)
        .output()
        .expect("rpmbuild");
    assert!(
        out.status.success(),
        "rpmbuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rpm = top.join(format!("RPMS/noarch/tinyagent-{version}-1.noarch.rpm"));
    assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
    let sum = sha256(&rpm);
    (rpm, sum)
}

/// Where a package comes from in the profile.
pub enum Source<'a> {
    /// An image path.
    Path(&'a Path, &'a str),
    /// A URL.
    Url(String, &'a str),
}

impl Source<'_> {
    fn line(&self) -> String {
        match self {
            Source::Path(p, _) => format!("path = \"{}\"", p.display()),
            Source::Url(u, _) => format!("url = \"{u}\""),
        }
    }

    fn sha(&self) -> &str {
        match self {
            Source::Path(_, s) | Source::Url(_, s) => s,
        }
    }
}

/// The host's package architecture name.
pub fn arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// Write the test agent profile (from the fixture template) for `version`.
pub fn profile(
    dir: &Path,
    name: &str,
    version: &str,
    deb: &Source<'_>,
    rpm: &Source<'_>,
) -> PathBuf {
    let template = fs::read_to_string(harness::fixtures("install-agent").join("tinyagent.toml.in"))
        .expect("template");
    let text = template
        .replace("@ARCH@", arch())
        .replace("@VERSION@", version)
        .replace("@SOURCE_DEB@", &deb.line())
        .replace("@SHA256_DEB@", deb.sha())
        .replace("@SOURCE_RPM@", &rpm.line())
        .replace("@SHA256_RPM@", rpm.sha());
    let path = dir.join(name);
    fs::write(&path, text).expect("profile");
    path
}

/// A local HTTPS server (Python's http.server behind a certificate signed
/// by a throwaway CA) serving one directory on 127.0.0.1.
#[derive(Debug)]
pub struct HttpsServer {
    child: Child,
    /// Base URL.
    pub url: String,
    /// The CA certificate to pass as --ca-bundle.
    pub ca: PathBuf,
    log: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HttpsServer {
    /// Serve `root`; certificates and the log go to `dir`.
    pub fn start(dir: &Path, root: &Path) -> HttpsServer {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=nodeguard test CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let script = "import http.server, ssl, sys, os\n\
                      os.chdir(sys.argv[1])\n\
                      srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n\
                      ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
                      ctx.load_cert_chain(sys.argv[2], sys.argv[3])\n\
                      srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
                      print(srv.server_address[1], flush=True)\n\
                      srv.serve_forever()\n";
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("python3");
        let log = dir.join("https.log");
        let mut child = Command::new(python)
            .args(["-c", script])
            .arg(root)
            .arg(dir.join("srv.pem"))
            .arg(dir.join("srv.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("python3 https server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("https server gave no port: {line:?}"));
        HttpsServer {
            child,
            url: format!("https://localhost:{port}"),
            ca: dir.join("ca.pem"),
            log,
        }
    }

    /// The server's access log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1 (Python), logging each
/// request line, to prove downloads honour `HTTPS_PROXY`.
#[derive(Debug)]
pub struct ConnectProxy {
    child: Child,
    /// Its port.
    pub port: u16,
    log: PathBuf,
}

impl ConnectProxy {
    /// Start it; the log goes to `dir`.
    pub fn start(dir: &Path) -> ConnectProxy {
        let script = r#"
import socket, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = c.recv(4096)
        if not chunk:
            return
        head += chunk
    line = head.split(b"\r\n")[0].decode()
    print(line, file=sys.stderr, flush=True)
    method, target, _ = line.split(" ", 2)
    if method != "CONNECT":
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        c.close()
        return
    host, port = target.rsplit(":", 1)
    upstream = socket.create_connection((host, int(port)))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(c, upstream), daemon=True).start()
    pipe(upstream, c)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"#;
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("python3");
        let log = dir.join("proxy.log");
        let mut child = Command::new(python)
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("python3 proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("proxy gave no port: {line:?}"));
        ConnectProxy { child, port, log }
    }

    /// The request lines it saw.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
