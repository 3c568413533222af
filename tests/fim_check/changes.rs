//! Every kind of change the tool must see: content, metadata, types, special files, symlinks, growing logs, devices, extended attributes, unreadable trees.

use super::*;

#[test]
fn builtin_policy_clean_check_then_every_kind_of_change() {
    let f = Fim::new("fim-kinds");
    f.put("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    f.put("etc/ssh/sshd_config", "PermitRootLogin no\n");
    f.put("etc/resolv.conf", "nameserver 10.0.0.1\n");
    f.put("usr/bin/kubelet", "ELF kubelet");
    f.put("usr/share/doc/x", "not selected");
    f.put("var/log/syslog", "excluded");
    f.put(
        "var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    );
    f.put("var/lib/kubelet/pods/p1/token", "excluded churn");
    symlink("usr/bin", f.root().join("bin")).expect("symlink");
    let init = f.run("init", &[]);
    init.assert_code(0);
    let v = init.json();
    assert_eq!(v["tool"], "fim-check");
    assert_eq!(v["baseline"]["authenticated"], true);
    let clean = f.run("check", &["--fail-on", "changes"]);
    clean.assert_code(0);
    let v = clean.json();
    for k in ["added", "removed", "changed", "errors", "scanned"] {
        assert!(v["summary"][k].as_u64().is_some(), "summary.{k}");
    }
    assert_eq!(v["summary"]["changed"], 0, "{v}");
    // /etc, /etc/passwd, /etc/ssh, sshd_config, /usr/bin, kubelet, /bin, config.yaml
    assert_eq!(v["summary"]["scanned"], 8, "{v}");

    f.put("etc/passwd", "root:x:0:0::/root:/bin/bash\n");
    fs::set_permissions(
        f.root().join("etc/ssh/sshd_config"),
        fs::Permissions::from_mode(0o666),
    )
    .expect("chmod");
    fs::remove_file(f.root().join("usr/bin/kubelet")).expect("rm");
    f.put("usr/bin/kubectl", "new binary");
    f.put("etc/resolv.conf", "nameserver 10.0.0.2\n");
    f.put("var/lib/kubelet/pods/p2/token", "more churn");
    fs::remove_file(f.root().join("bin")).expect("rm link");
    symlink("/tmp", f.root().join("bin")).expect("symlink");
    let r = f.run("check", &["--fail-on", "changes"]);
    r.assert_code(1);
    let v = r.json();
    let got = changes(&v);
    let want: Vec<(String, String)> = [
        ("/bin", "changed"),
        ("/etc/passwd", "changed"),
        ("/etc/ssh/sshd_config", "changed"),
        ("/usr/bin/kubectl", "added"),
        ("/usr/bin/kubelet", "removed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{v}");
    assert!(attr_names(&v, "/etc/passwd").contains(&"sha256".to_string()));
    assert!(attr_names(&v, "/etc/ssh/sshd_config").contains(&"perm".to_string()));
    assert!(attr_names(&v, "/bin").contains(&"link_target".to_string()));
    // Without --fail-on the same findings exit 0.
    f.run("check", &[]).assert_code(0);
}

#[test]
fn ctime_catches_a_reset_mtime() {
    let f = Fim::with_config("fim-ctime", ALL);
    let p = f.put("app.conf", "listen 80\n");
    let before = fs::metadata(&p).expect("stat").modified().expect("mtime");
    f.run("init", &[]).assert_code(0);
    f.put("app.conf", "listen 81\n");
    fs::File::options()
        .write(true)
        .open(&p)
        .expect("open")
        .set_modified(before)
        .expect("reset mtime");
    let v = f.run("check", &[]).json();
    let names = attr_names(&v, "/app.conf");
    assert!(
        names.contains(&"ctime".to_string()) && names.contains(&"sha256".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"mtime".to_string()),
        "mtime was reset: {names:?}"
    );
}

#[test]
fn special_files_hard_links_sparse_and_odd_names() {
    let f = Fim::with_config("fim-special", ALL);
    let root = f.root();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).expect("socket");
    f.put("hard1", "same inode");
    fs::hard_link(root.join("hard1"), root.join("hard2")).expect("link");
    let sparse = fs::File::create(root.join("sparse")).expect("create");
    sparse.set_len(64 << 20).expect("truncate");
    use std::os::unix::ffi::OsStrExt;
    let odd = root.join(std::ffi::OsStr::from_bytes(b"bad\xffname \"q\\\n"));
    fs::write(&odd, "x").expect("odd name");
    let mut deep = root.join("deep");
    for _ in 0..300 {
        deep = deep.join("d");
    }
    fs::create_dir_all(&deep).expect("deep");
    fs::write(deep.join("leaf"), "leaf").expect("leaf");
    f.run("init", &[]).assert_code(0);
    let r = f.run("check", &["--fail-on", "any"]);
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["summary"]["errors"], 0, "{v}");
    // root, fifo, sock, 2 hard links, sparse, odd, deep + 300 dirs + leaf
    assert_eq!(v["summary"]["scanned"], 1 + 6 + 1 + 300 + 1, "{v}");
    fs::write(&odd, "y").expect("odd name");
    fs::write(deep.join("leaf"), "leaf2").expect("leaf");
    let v = f.run("check", &[]).json();
    let paths: Vec<String> = changes(&v).into_iter().map(|(p, _)| p).collect();
    assert!(
        paths.iter().any(|p| p.starts_with("/bad\\xffname")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.ends_with("/d/leaf")), "{paths:?}");
    let odd_change = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path_hex"].is_string())
        .expect("path_hex");
    let want_hex: String = b"/bad\xffname \"q\\\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(odd_change["path_hex"], want_hex, "{odd_change}");
    // Hard links: a write through one name changes both entries' content.
    fs::write(root.join("hard2"), "changed inode content").expect("write");
    let v = f.run("check", &[]).json();
    let paths: Vec<String> = changes(&v).into_iter().map(|(p, _)| p).collect();
    assert!(
        paths.contains(&"/hard1".to_string()) && paths.contains(&"/hard2".to_string()),
        "{paths:?}"
    );
}

#[test]
fn symlinks_are_recorded_never_followed_out_of_the_root() {
    let f = Fim::with_config("fim-symlink", ALL);
    symlink("/etc", f.root().join("etc")).expect("abs link");
    symlink("../../..", f.root().join("up")).expect("rel link");
    fs::create_dir(f.root().join("real")).expect("mkdir");
    f.run("init", &[]).assert_code(0);
    let mut c = f.cmd("show");
    c.arg("--key-file")
        .arg(f.dir.join("key"))
        .args(["--path", "/etc"]);
    let v = harness::run(&mut c).json();
    assert_eq!(v["entry"]["type"], "symlink");
    assert_eq!(v["entry"]["attributes"]["link_target"], "/etc");
    assert_eq!(v["baseline"]["entries"], 4, "only /, /etc, /real, /up: {v}");
}

#[test]
fn growing_logs_may_append_but_not_rewrite() {
    let f = Fim::with_config(
        "fim-growing",
        "[[rule]]\npath = \"/\"\nattributes = \"content\"\n[[rule]]\nglob = \"/log/*.log\"\nattributes = \"log\"\n",
    );
    f.put("log/app.log", "line 1\n");
    f.run("init", &[]).assert_code(0);
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(f.root().join("log/app.log"))
        .expect("open");
    std::io::Write::write_all(&mut log, b"line 2\n").expect("append");
    let v = f.run("update", &[]).json();
    assert_eq!(v["summary"]["changed"], 0, "appending is allowed: {v}");
    f.put("log/app.log", "LINE 1\nline 2\nline 3\n");
    let v = f.run("check", &[]).json();
    assert_eq!(
        changes(&v),
        vec![("/log/app.log".to_string(), "changed".to_string())],
        "{v}"
    );
    assert!(attr_names(&v, "/log/app.log").contains(&"sha256".to_string()));
}

#[test]
fn device_nodes_record_their_numbers() {
    skip_unless_root!("mknod needs CAP_MKNOD");
    let f = Fim::with_config("fim-dev", ALL);
    let mk = |name: &str, kind: nix::sys::stat::SFlag, minor: u64| {
        nix::sys::stat::mknod(
            &f.root().join(name),
            kind,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, minor),
        )
        .expect("mknod");
    };
    mk("null", nix::sys::stat::SFlag::S_IFCHR, 3);
    mk("blk", nix::sys::stat::SFlag::S_IFBLK, 7);
    f.run("init", &[]).assert_code(0);
    fs::remove_file(f.root().join("null")).expect("rm");
    mk("null", nix::sys::stat::SFlag::S_IFCHR, 5);
    let v = f.run("check", &[]).json();
    let c = &v["changes"][0];
    assert_eq!(c["path"], "/null", "{v}");
    let dev = c["attributes"]
        .as_array()
        .expect("attrs")
        .iter()
        .find(|a| a["name"] == "device")
        .expect("device change");
    assert_eq!(dev["old"], "1:3");
    assert_eq!(dev["new"], "1:5");
}

/// Extended attributes (the carrier of SELinux labels, file capabilities
/// and ACLs) are recorded and compared one by one.
#[test]
fn extended_attribute_changes_are_reported_by_name() {
    let f = Fim::with_config("fim-xattr", ALL);
    let p = f.put("bin", "ELF");
    let setx = |name: &str, value: &[u8]| {
        let code = format!("import os,sys; os.setxattr(sys.argv[1], {name:?}, bytes({value:?}))");
        let st = Command::new("python3")
            .args(["-c", &code])
            .arg(&p)
            .status()
            .expect("python3");
        st.success()
    };
    if !setx("user.fim", b"v1") {
        eprintln!("SKIPPED: the test file system has no user xattrs");
        return;
    }
    f.run("init", &[]).assert_code(0);
    assert!(setx("user.fim", b"v2") && setx("user.bin", &[0, 1, 2]));
    let v = f.run("check", &[]).json();
    let c = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == "/bin")
        .expect("/bin changed");
    let attrs = c["attributes"].as_array().expect("attributes");
    let get = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {attrs:?}"))
    };
    assert_eq!(get("xattrs.user.fim")["old"], "v1");
    assert_eq!(get("xattrs.user.fim")["new"], "v2");
    assert_eq!(get("xattrs.user.bin")["old"], Value::Null);
    assert_eq!(get("xattrs.user.bin")["new"], "hex:000102");
}

#[test]
fn unreadable_directories_are_errors_not_removals() {
    skip_unless_root!("needs to run the tool as an unprivileged user (setpriv) to get EACCES");
    let f = Fim::with_config("fim-eacces", ALL);
    fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    fs::set_permissions(f.root(), fs::Permissions::from_mode(0o755)).expect("chmod");
    f.put("open/a", "1");
    f.put("locked/secret", "s");
    fs::set_permissions(f.dir.join("key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(f.dir.join("policy.toml"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    for d in ["open", "locked"] {
        fs::set_permissions(f.root().join(d), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::set_permissions(f.root().join("open/a"), fs::Permissions::from_mode(0o644)).expect("chmod");
    f.run("init", &[]).assert_code(0); // as root: everything recorded
    fs::set_permissions(f.base(), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(f.root().join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(harness::bin("fim-check"));
    c.arg("check")
        .arg("--host-root")
        .arg(f.root())
        .arg("--baseline")
        .arg(f.base());
    c.args(["--node-name", "node-a", "--nice", "0", "--key-file"])
        .arg(f.dir.join("key"));
    c.arg("--config").arg(f.config.as_ref().expect("config"));
    let r = harness::run(&mut c);
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["summary"]["removed"], 0, "unreadable is not removed: {v}");
    assert_eq!(v["errors"][0]["path"], "/locked", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("msg")
            .contains("ermission denied"),
        "{v}"
    );
}
