#!/usr/bin/env python3
"""Validates the Helm chart in manifests/chart/nodeguard, offline.

Run by tests/deploy.rs (cargo test) with the CI venv's Python; on its own:

    $NODEGUARD_VENV/bin/python tests/deploy/check_chart.py [--update]

For every values scenario in tests/deploy/scenarios/ it renders the chart with
Helm's own engine (PyPI helm-python-sdk, pinned in tests/setup/deploy.sh) and
checks the output with yamllint, kubernetes-validate (Kubernetes 1.27-1.33,
strict), checkov (only the skips the templates annotate and docs/deploy.md
justifies), and the privilege claims below. It also lints the chart strictly,
checks that bad values are rejected, that config changes roll the pods, the
Falco rules, and that manifests/deploy/nodeguard.yaml is the default
rendering (--update rewrites it).

The privilege claim:
  * only the bootstrapper may be privileged (and only when asked) or hold
    SYS_ADMIN; each component adds exactly its documented capabilities;
  * hostPID only for bootstrap and bench-node; no hostNetwork, no hostIPC;
  * no host path is mounted read-write except nodeguard's own state
    directories, the textfile directory and the CRI socket; "/" never is;
    the bootstrapper mounts none but those (it reads the host via /proc/1/root);
  * every container has requests and limits, a read-only root file system,
    drops ALL capabilities, no privilege escalation, RuntimeDefault seccomp;
  * no API token anywhere, no RBAC objects, no credentials in env, Secrets
    immutable, no preStop hooks.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as hp
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests/chart/nodeguard"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
RENDERED = ROOT / "manifests/deploy/nodeguard.yaml"
KUBE_VERSIONS = [f"1.{minor}.0" for minor in range(27, 34)]
RELEASE = "nodeguard"
RELEASE_NAMESPACE = "default"

# Capabilities each component may add (drop is always ALL).
ALLOWED_CAPS = {
    "bootstrap": {"SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"},
    "scan-images": set(),
    "fim": {"DAC_READ_SEARCH"},
    "bench-node": set(),
}
HOST_PID = {"bootstrap", "bench-node"}
# checkov checks a component may skip (annotated with the reason in the
# template; docs/deploy.md explains each). CKV_K8S_43 only without a digest,
# CKV_K8S_16/20/28/37 only for the opt-in privileged bootstrapper.
ALLOWED_SKIPS = {
    "bootstrap": {"CKV_K8S_8", "CKV_K8S_15", "CKV_K8S_17", "CKV_K8S_23", "CKV_K8S_40",
                  "CKV_K8S_25", "CKV_K8S_39", "CKV_K8S_43", "CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_28",
                  "CKV_K8S_37"},
    "scan-images": {"CKV_K8S_8", "CKV_K8S_15", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_43"},
    "fim": {"CKV_K8S_8", "CKV_K8S_15", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_25", "CKV_K8S_43"},
    "bench-node": {"CKV_K8S_8", "CKV_K8S_15", "CKV_K8S_17", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_43"},
    # The cluster-report CronJob (cluster-view area): non-root, no host
    # access; only the image reference checks, as for every component.
    "cluster-report": {"CKV_K8S_15", "CKV_K8S_43"},
}
FALCO_PRIORITIES = {"EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE",
                    "INFORMATIONAL", "INFO", "DEBUG"}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL: {what}", flush=True)
        return ok


def render(values, name=RELEASE):
    """Renders the chart; returns (manifest text, list of objects)."""
    out = hp.Chart.load(str(CHART)).render(
        values=values, name=name, namespace=RELEASE_NAMESPACE, is_install=True)
    parts = []
    for path in sorted(out):
        text = out[path].strip()
        if not path.endswith(".yaml") or not text:
            continue
        parts.append(f"# Source: {path}\n{text}\n")
    text = "---\n".join(parts)
    docs = [d for d in yaml.safe_load_all(text) if d]
    return text, docs


def scenario_values():
    for path in sorted(SCENARIOS.glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        yield path.stem, values


def containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def check_privileges(c, scen, values, docs):
    kinds = [d["kind"] for d in docs]
    c.check(not {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} & set(kinds),
            f"{scen}: no RBAC objects (no component uses the API)")
    state = (values.get("hostPaths") or {}).get("state", "/var/lib/nodeguard")
    textfile = (values.get("hostPaths") or {}).get(
        "textfileCollector", "/var/lib/node-exporter/textfile_collector")
    socket = (values.get("scanImages") or {}).get("runtimeSocket", "/run/containerd/containerd.sock")
    want_privileged = bool((values.get("bootstrap") or {}).get("privileged"))
    for d in docs:
        name = f"{scen}: {d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "ServiceAccount":
            c.check(d.get("automountServiceAccountToken") is False, f"{name}: no token automount")
        if d["kind"] == "Secret":
            c.check(d.get("immutable") is True, f"{name}: immutable")
        if d["kind"] != "DaemonSet":
            continue
        comp = d["metadata"]["labels"]["app.kubernetes.io/component"]
        tmpl = d["spec"]["template"]
        pod = tmpl["spec"]
        c.check(comp in ALLOWED_CAPS, f"{name}: known component {comp}")
        c.check(d["spec"]["updateStrategy"]["type"] == "RollingUpdate"
                and "maxUnavailable" in d["spec"]["updateStrategy"]["rollingUpdate"],
                f"{name}: RollingUpdate with maxUnavailable")
        c.check(pod.get("automountServiceAccountToken") is False, f"{name}: no token automount")
        c.check(bool(pod.get("hostPID")) == (comp in HOST_PID), f"{name}: hostPID only where needed")
        c.check(not pod.get("hostNetwork") and not pod.get("hostIPC"), f"{name}: no hostNetwork/hostIPC")
        c.check((pod.get("nodeSelector") or {}).get("kubernetes.io/os") == "linux", f"{name}: linux nodeSelector")
        c.check("checksum/config" in (tmpl["metadata"].get("annotations") or {}),
                f"{name}: checksum annotation rolls pods on config change")
        pod_seccomp = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        skips = {v.split("=", 1)[0] for k, v in (d["metadata"].get("annotations") or {}).items()
                 if k.startswith("checkov.io/skip")}
        c.check(skips <= ALLOWED_SKIPS.get(comp, set()),
                f"{name}: checkov skips {sorted(skips - ALLOWED_SKIPS.get(comp, set()))} are not documented")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if comp == "bootstrap":
            # install-agent reads host files through /proc/1/root: no host mount.
            paths = [v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v]
            c.check(all(p.startswith(state + "/") or p == textfile for p in paths),
                    f"{name}: no host path but results and metrics ({paths})")
        for ctr in containers(pod):
            cname = f"{name}/{ctr['name']}"
            sc = ctr.get("securityContext") or {}
            privileged = bool(sc.get("privileged"))
            caps = sc.get("capabilities") or {}
            added = set(caps.get("add") or [])
            c.check(not privileged or (comp == "bootstrap" and want_privileged),
                    f"{cname}: privileged only for the opt-in bootstrapper")
            c.check("SYS_ADMIN" not in added or comp == "bootstrap", f"{cname}: SYS_ADMIN only for bootstrap")
            c.check(added <= ALLOWED_CAPS.get(comp, set()), f"{cname}: capabilities {sorted(added)} as documented")
            if not privileged:
                c.check(caps.get("drop") == ["ALL"], f"{cname}: drops ALL capabilities")
                c.check(sc.get("allowPrivilegeEscalation") is False, f"{cname}: no privilege escalation")
                seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
                c.check(seccomp == "RuntimeDefault", f"{cname}: RuntimeDefault seccomp")
            c.check(sc.get("readOnlyRootFilesystem") is True, f"{cname}: read-only root file system")
            res = ctr.get("resources") or {}
            c.check(all(k in (res.get(kind) or {}) for kind in ("requests", "limits") for k in ("cpu", "memory")),
                    f"{cname}: cpu and memory requests and limits")
            c.check("preStop" not in (ctr.get("lifecycle") or {}), f"{cname}: no preStop hook")
            for env in ctr.get("env", []):
                src = env.get("valueFrom") or {}
                c.check("secretKeyRef" not in src, f"{cname}: env {env['name']} not from a Secret")
            c.check(not ctr.get("envFrom"), f"{cname}: no envFrom")
            for m in ctr.get("volumeMounts", []):
                hp_src = (volumes.get(m["name"]) or {}).get("hostPath")
                if not hp_src:
                    continue
                path = hp_src["path"].rstrip("/") or "/"
                writable = not m.get("readOnly")
                if path == "/":
                    c.check(not writable, f"{cname}: host / mounted read-only")
                if writable:
                    ok = (path == state or path.startswith(state + "/") or path == textfile
                          or (comp == "scan-images" and path == socket))
                    c.check(ok, f"{cname}: host path {path} writable (only state, textfile, CRI socket may be)")


def check_scenario_specifics(c, scen, values, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ds = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind.get("DaemonSet", [])}
    if scen == "default":
        c.check(set(ds) == set(ALLOWED_CAPS), f"{scen}: all four DaemonSets")
        ns = by_kind["Namespace"][0]["metadata"]["labels"]
        c.check(ns.get("pod-security.kubernetes.io/enforce") == "privileged"
                and ns.get("pod-security.kubernetes.io/warn") == "baseline"
                and ns.get("pod-security.kubernetes.io/audit") == "baseline",
                f"{scen}: PSS enforce privileged, warn/audit baseline")
        np = by_kind["NetworkPolicy"][0]["spec"]
        ports = sorted((p["port"], p["protocol"]) for rule in np["egress"] for p in rule["ports"])
        c.check(ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")], f"{scen}: egress only DNS and 443 ({ports})")
        c.check(np.get("ingress") == [] and "Ingress" in np["policyTypes"], f"{scen}: no ingress")
        c.check("ResourceQuota" in by_kind, f"{scen}: ResourceQuota for system-node-critical")
        c.check(all(d["spec"]["template"]["spec"].get("priorityClassName") == "system-node-critical"
                    for d in ds.values()), f"{scen}: system-node-critical")
        c.check("Secret" not in by_kind, f"{scen}: no Secret without credentials")
    if scen == "component-off":
        c.check("scan-images" not in ds and len(ds) == 3, f"{scen}: scan-images disabled")
        c.check(all("scan-images" not in d["metadata"]["name"] for d in docs), f"{scen}: nothing of scan-images left")
    if scen == "existing-secret":
        vol = [v for v in ds["bootstrap"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "credentials"][0]
        c.check(vol["secret"]["secretName"] == values["credentials"]["existingSecret"], f"{scen}: uses existingSecret")
        c.check("Secret" not in by_kind, f"{scen}: creates no Secret")
    if scen == "credentials":
        secrets = by_kind.get("Secret", [])
        c.check(len(secrets) == 2, f"{scen}: credentials and FIM key Secrets")
        dump = json.dumps([d for d in docs if d["kind"] != "Secret"])
        for v in values["credentials"]["values"].values():
            c.check(v not in dump, f"{scen}: credential value only in the Secret")
        c.check(values["fim"]["key"] not in dump, f"{scen}: FIM key only in its Secret")
    if scen == "falco":
        cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("falco-rules")]
        c.check(len(cms) == 1 and cms[0]["metadata"]["namespace"] == "falco", f"{scen}: Falco rules ConfigMap in falco")
        if cms:
            check_falco_rules(c, yaml.safe_load(cms[0]["data"]["nodeguard_rules.yaml"]))
    if scen == "privileged":
        sc = ds["bootstrap"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        c.check(sc.get("privileged") is True, f"{scen}: bootstrap privileged on request")
    if scen == "digest":
        for d in ds.values():
            img = d["spec"]["template"]["spec"]["containers"][0]["image"]
            c.check("@sha256:" in img, f"{scen}: {img} by digest")
    if scen == "kube-system":
        c.check("ResourceQuota" not in by_kind and "Namespace" not in by_kind,
                f"{scen}: no quota and no namespace object in kube-system")


def check_falco_rules(c, rules):
    c.check(isinstance(rules, list) and rules, "falco rules: a non-empty list")
    lists = {r["list"] for r in rules if "list" in r}
    macros = {r["macro"] for r in rules if "macro" in r}
    for r in rules:
        if "rule" not in r:
            c.check(("list" in r and isinstance(r.get("items"), list))
                    or ("macro" in r and isinstance(r.get("condition"), str)),
                    f"falco: {r} is a rule, list or macro")
            continue
        name = r["rule"]
        c.check({"desc", "condition", "output", "priority"} <= set(r), f"falco {name}: required fields")
        c.check(str(r.get("priority", "")).upper() in FALCO_PRIORITIES, f"falco {name}: known priority")
    # Every nodeguard_ name used anywhere must be defined: the seed's rules
    # failed to load because of an undefined list.
    import re
    text = json.dumps([r.get("condition", "") for r in rules])
    used = set(re.findall(r"\bnodeguard_[a-z_]+\b", text))
    c.check(used <= lists | macros, f"falco: undefined lists/macros {sorted(used - lists - macros)}")
    # Falco resolves names in load order: each must be defined above its use.
    defined = set()
    for r in rules:
        used_here = set(re.findall(r"\b(nodeguard_[a-z_]+)\b", str(r.get("condition", ""))))
        c.check(used_here <= defined, f"falco: {r.get('rule') or r.get('macro')} uses "
                                      f"{sorted(used_here - defined)} before their definition")
        defined |= {r[k] for k in ("list", "macro") if k in r}


def check_rejections(c):
    bad = {
        "unknown top-level key": {"scanimages": {"enabled": False}},
        "unknown nested key": {"fim": {"intervalSecond": 60}},
        "bad window": {"loop": {"window": "25:00-04:00"}},
        "secret in env map": {"bootstrap": {"env": {"ACTIVATION_ID": "x"}}},
        "loop variable through env": {"fim": {"env": {"NODEGUARD_LOOP_INTERVAL": "1"}}},
        "both credential sources": {"credentials": {"existingSecret": "s", "values": {"a": "b"}}},
        "missing limits": {"fim": {"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}},
        "host path with ..": {"benchNode": {"hostPaths": ["/etc/../"]}},
    }
    for what, values in bad.items():
        try:
            if what == "missing limits":
                # A merge cannot delete limits: null them instead.
                values = {"fim": {"resources": {"limits": None}}}
            render(values)
            ok = False
        except hp.HelmError:
            ok = True
        c.check(ok, f"values rejected: {what}")


def check_rollouts(c):
    base = {"credentials": {"values": {"activation_id": "a1"}}}
    _, docs1 = render(base)
    _, docs2 = render({"credentials": {"values": {"activation_id": "a2"}}})
    _, docs3 = render({**base, "loop": {"window": "01:00-05:00"}})

    def ann(docs, comp):
        for d in docs:
            if d["kind"] == "DaemonSet" and d["metadata"]["labels"]["app.kubernetes.io/component"] == comp:
                return d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    c.check(ann(docs1, "bootstrap") != ann(docs2, "bootstrap"), "credential change rolls the bootstrap pods")
    c.check(ann(docs1, "fim") == ann(docs2, "fim"), "credential change leaves fim alone")
    c.check(all(ann(docs1, comp) != ann(docs3, comp) for comp in ALLOWED_CAPS), "loop change rolls every DaemonSet")
    names = lambda docs: {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    c.check(names(docs1) != names(docs2), "a new credential value is a new (immutable) Secret")


def yamllint(c, scen, text):
    conf = ("{extends: default, rules: {line-length: disable, document-start: disable, "
            "comments: {min-spaces-from-content: 1}, indentation: {indent-sequences: whatever}}}")
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-d", conf, "-"], input=text, text=True,
                          capture_output=True)
    c.check(proc.returncode == 0, f"{scen}: yamllint\n{proc.stdout}{proc.stderr}")


def yamllint_sources(c):
    """The hand-written YAML: values, Chart.yaml, Falco rules, scenarios."""
    files = [CHART / "values.yaml", CHART / "Chart.yaml", CHART / "files/falco/nodeguard_rules.yaml",
             *sorted(SCENARIOS.glob("*.yaml"))]
    conf = "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}"
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-d", conf, *map(str, files)],
                          capture_output=True, text=True)
    c.check(proc.returncode == 0, f"yamllint of the chart's sources\n{proc.stdout}{proc.stderr}")


def kube_validate(c, scen, docs):
    for version in KUBE_VERSIONS:
        for d in docs:
            if d["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: not in Kubernetes' own schemas
            try:
                kubernetes_validate.validate(d, version, strict=True)
                ok, err = True, ""
            except kubernetes_validate.ValidationError as e:
                ok, err = False, str(e.message)
            c.check(ok, f"{scen}: {d['kind']}/{d['metadata']['name']} valid for Kubernetes {version}: {err}")


def checkov(c, rendered):
    with tempfile.TemporaryDirectory(prefix="nodeguard-checkov-") as tmp:
        for scen, text in rendered.items():
            Path(tmp, f"{scen}.yaml").write_text(text)
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
        proc = subprocess.run([str(Path(sys.executable).parent / "checkov"), "-d", tmp, "--framework",
                               "kubernetes", "--quiet", "--compact", "-o", "json"],
                              capture_output=True, text=True, env=env)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            c.check(False, f"checkov output is not JSON (rc {proc.returncode}): {proc.stderr[-2000:]}")
            return
        reports = report if isinstance(report, list) else [report]
        failed = [f"{r['check_id']} {r['resource']} ({Path(r['file_path']).stem})"
                  for rep in reports for r in rep.get("results", {}).get("failed_checks", [])]
        summary = [rep.get("summary", {}) for rep in reports]
        passed = sum(s.get("passed", 0) for s in summary)
        errors = sum(s.get("parsing_errors", 0) for s in summary)
        c.check(not failed and passed > 0 and errors == 0,
                f"checkov: failed {failed}, passed {passed}, parsing errors {errors}")


def lint(c):
    report = hp.lint(str(CHART), strict=True)
    msgs = [m for m in report["messages"] if m["severity"] >= 2]
    c.check(not msgs and not report["errors"], f"helm lint --strict: {msgs} {report['errors']}")
    for scen, values in scenario_values():
        report = hp.lint(str(CHART), values, strict=True, namespace=RELEASE_NAMESPACE)
        msgs = [m for m in report["messages"] if m["severity"] >= 2]
        c.check(not msgs and not report["errors"], f"helm lint --strict ({scen}): {msgs} {report['errors']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="rewrite manifests/deploy/nodeguard.yaml")
    ap.add_argument("--no-checkov", action="store_true", help="skip checkov (slow)")
    args = ap.parse_args()
    c = Checker()

    lint(c)
    yamllint_sources(c)
    rendered = {}
    for scen, values in scenario_values():
        try:
            text, docs = render(values)
        except hp.HelmError as e:
            c.check(False, f"{scen}: renders: {e}")
            continue
        rendered[scen] = text
        yamllint(c, scen, text)
        kube_validate(c, scen, docs)
        check_privileges(c, scen, values, docs)
        check_scenario_specifics(c, scen, values, docs)
    c.check({"default", "existing-secret", "falco", "component-off"} <= set(rendered),
            "the issue's scenarios are all rendered")
    check_falco_rules(c, yaml.safe_load((CHART / "files/falco/nodeguard_rules.yaml").read_text()))
    check_rejections(c)
    check_rollouts(c)
    if not args.no_checkov:
        checkov(c, rendered)

    header = ("# nodeguard: rendered from manifests/chart/nodeguard with default values.\n"
              "# Do not edit: regenerate with `python tests/deploy/check_chart.py --update`.\n"
              "# Install with `kubectl apply -f manifests/deploy/` (docs/deploy.md).\n")
    default = header + "---\n" + rendered["default"]
    if args.update:
        RENDERED.parent.mkdir(parents=True, exist_ok=True)
        RENDERED.write_text(default)
        print(f"wrote {RENDERED.relative_to(ROOT)}")
    else:
        current = RENDERED.read_text() if RENDERED.exists() else ""
        c.check(current == default,
                "manifests/deploy/nodeguard.yaml is out of date: run tests/deploy/check_chart.py --update")

    print(f"{c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
