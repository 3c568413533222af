#!/usr/bin/env python3
"""Validates the Helm chart in manifests/chart/nodeguard, offline.

Run by tests/deploy.rs (cargo test) with the CI venv's Python; on its own:

    $NODEGUARD_VENV/bin/python tests/deploy/check_chart.py [--update]

For every values scenario in tests/deploy/scenarios/ it renders the chart with
Helm's own engine (PyPI helm-python-sdk, pinned in tests/setup/deploy.sh) and
checks the output with yamllint, kubernetes-validate (strict, rendered for and
validated against every minor from 1.25, the supported floor, to the newest
kubernetes-validate has schemas for), checkov (only the skips the templates
annotate and docs/deploy.md justifies), and the privilege claims below. It also
lints the chart strictly, checks that bad values are rejected, that config
changes roll the pods, the Falco rules, the OpenShift SCCs (against a schema
of the public SecurityContextConstraints API, tests/deploy/scc.schema.json,
and against what each pod asks for), and that manifests/deploy/nodeguard.yaml
is the plain-manifest rendering (--update rewrites it), valid on every minor.

The privilege claim:
  * only the bootstrapper may be privileged (and only when asked) or hold
    SYS_ADMIN; each component adds exactly its documented capabilities;
  * hostPID only for bootstrap and bench-node; no hostNetwork, no hostIPC;
  * no host path is mounted read-write except nodeguard's own state
    directories, the textfile directory and the CRI socket; "/" never is;
    the bootstrapper mounts none but those (it reads the host via /proc/1/root);
  * every container has requests and limits, a read-only root file system,
    drops ALL capabilities, no privilege escalation, RuntimeDefault seccomp;
  * no API token anywhere, no RBAC objects (on OpenShift only the Role and
    RoleBinding to `use` each component's SCC), no credentials in env,
    Secrets immutable, no preStop hooks;
  * LSMs: the bootstrap container is AppArmor-unconfined (the annotation on
    every version, plus the appArmorProfile field from 1.30, both agreeing)
    and SELinux spc_t, not privileged; every other pod keeps the runtime's
    default profile unless its values say otherwise;
  * no hostPath of type Directory or File outside the paths every node has
    (/, /etc, /proc, /sys, /usr, /var/lib/kubelet): no pod can wait in
    ContainerCreating for a missing optional directory;
  * every namespaced object is in the release namespace, and no Namespace
    object is rendered unless namespace.create asks for it.
"""

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as hp
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests/chart/nodeguard"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
RENDERED = ROOT / "manifests/deploy/nodeguard.yaml"
SCC_SCHEMA = Path(__file__).resolve().parent / "scc.schema.json"
# The supported floor (docs/deploy.md says why) to the newest minor the
# installed kubernetes-validate has schemas for.
FLOOR_MINOR = 25
NEWEST_MINOR = max(int(v.split(".")[1]) for v in kv_utils.all_versions())
KUBE_VERSIONS = [f"1.{minor}.0" for minor in range(FLOOR_MINOR, NEWEST_MINOR + 1)]
APPARMOR_FIELD_MINOR = 30
RELEASE = "nodeguard"
RELEASE_NAMESPACE = "nodeguard"
# What manifests/deploy/ is rendered with: the floor version (the AppArmor
# annotation only, which every supported minor honours) and a Namespace
# object, since `kubectl apply` has no --create-namespace.
PLAIN_MANIFEST_VALUES = {"namespace": {"create": True}, "kubeVersionOverride": f"1.{FLOOR_MINOR}.0"}
# Host paths every node has: a hostPath of type Directory/File elsewhere would
# leave the pod in ContainerCreating on nodes that lack it.
ALWAYS_PRESENT = {"/", "/etc", "/proc", "/sys", "/usr", "/var/lib/kubelet"}
CLUSTER_SCOPED = {"Namespace", "SecurityContextConstraints"}

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


_CHART = []


def _chart():
    if not _CHART:
        _CHART.append(hp.Chart.load(str(CHART)))
    return _CHART[0]


def render(values, name=RELEASE, namespace=RELEASE_NAMESPACE, kube_version=None):
    """Renders the chart; returns (manifest text, list of objects)."""
    if kube_version:
        values = {**values, "kubeVersionOverride": kube_version}
    out = _chart().render(
        values=values, name=name, namespace=namespace, is_install=True)
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
    """(name, values, release): `x-test: {release, namespace}` in a scenario
    file sets the Helm release (not a chart value)."""
    for path in sorted(SCENARIOS.glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        release = {"name": RELEASE, "namespace": RELEASE_NAMESPACE, **values.pop("x-test", {})}
        yield path.stem, values, release


def containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def check_privileges(c, scen, values, docs):
    kinds = [d["kind"] for d in docs]
    openshift = bool((values.get("openshift") or {}).get("enabled"))
    c.check(not {"ClusterRole", "ClusterRoleBinding"} & set(kinds)
            and (openshift or not {"Role", "RoleBinding"} & set(kinds)),
            f"{scen}: no RBAC objects (no component uses the API; on OpenShift only SCC use)")
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


def lsm_values(values, key):
    """(appArmorProfile, seLinuxType) a component's values ask for."""
    defaults = {"bootstrap": ("Unconfined", "spc_t")}.get(key, ("", ""))
    v = values.get(key) or {}
    aa = v.get("appArmorProfile", defaults[0])
    se = v.get("seLinuxType", defaults[1])
    if not se and (values.get("openshift") or {}).get("enabled"):
        se = "spc_t"
    return aa, se


COMPONENT_KEYS = {"bootstrap": "bootstrap", "scan-images": "scanImages", "fim": "fim", "bench-node": "benchNode"}
ANNOTATION_OF = {"Unconfined": "unconfined", "RuntimeDefault": "runtime/default"}


def check_lsm(c, scen, values, docs, minor):
    """AppArmor by annotation on every version and by field from 1.30 (they
    must agree: the API server rejects a mismatch); SELinux type."""
    for d in docs:
        if d["kind"] != "DaemonSet":
            continue
        comp = d["metadata"]["labels"]["app.kubernetes.io/component"]
        tmpl = d["spec"]["template"]
        ann = tmpl["metadata"].get("annotations") or {}
        aa, se = lsm_values(values, COMPONENT_KEYS[comp])
        for ctr in containers(tmpl["spec"]):
            name = f"{scen} (1.{minor}): {comp}/{ctr['name']}"
            sc = ctr.get("securityContext") or {}
            key = f"container.apparmor.security.beta.kubernetes.io/{ctr['name']}"
            want_ann = ANNOTATION_OF.get(aa, f"localhost/{aa[len('Localhost/'):]}") if aa else None
            c.check(ann.get(key) == want_ann, f"{name}: AppArmor annotation {ann.get(key)!r}, want {want_ann!r}")
            field = sc.get("appArmorProfile")
            if minor < APPARMOR_FIELD_MINOR or not aa:
                c.check(field is None, f"{name}: no appArmorProfile field before 1.30 or when unset ({field})")
            else:
                ftype = field and field.get("type")
                fann = {"Unconfined": "unconfined", "RuntimeDefault": "runtime/default",
                        "Localhost": f"localhost/{(field or {}).get('localhostProfile')}"}.get(ftype)
                c.check(fann == want_ann, f"{name}: appArmorProfile field {field} agrees with the annotation {want_ann}")
            got_se = (sc.get("seLinuxOptions") or {}).get("type") or \
                ((tmpl["spec"].get("securityContext") or {}).get("seLinuxOptions") or {}).get("type")
            c.check((got_se or "") == se, f"{name}: SELinux type {got_se!r}, want {se!r}")
            if comp == "bootstrap" and not (values.get("bootstrap") or {}).get("privileged"):
                caps = set((sc.get("capabilities") or {}).get("add") or [])
                c.check(not sc.get("privileged") and caps == {"SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"},
                        f"{name}: not privileged, exactly SYS_ADMIN, SYS_CHROOT, SYS_PTRACE ({sorted(caps)})")
    if scen == "default" and minor >= APPARMOR_FIELD_MINOR:
        boot = [d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"].endswith("-bootstrap")][0]
        sc = boot["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        c.check(sc.get("appArmorProfile") == {"type": "Unconfined"} and sc.get("seLinuxOptions") == {"type": "spc_t"}
                and sc.get("privileged") is False,
                f"{scen}: the bootstrap container is AppArmor Unconfined and SELinux spc_t, not privileged")


def check_host_paths(c, scen, values, docs):
    """No hostPath that makes the kubelet wait for a path some nodes lack."""
    default_bench_paths = "hostPaths" not in (values.get("benchNode") or {})
    for d in docs:
        if d["kind"] != "DaemonSet":
            continue
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            hp_src = v.get("hostPath")
            if hp_src and hp_src.get("type") in ("Directory", "File"):
                path = hp_src["path"].rstrip("/") or "/"
                c.check(path in ALWAYS_PRESENT,
                        f"{scen}: {d['metadata']['name']} hostPath {path} of type {hp_src['type']} "
                        f"(only {sorted(ALWAYS_PRESENT)} may be checked: others stall the pod where missing)")
        if d["metadata"]["name"].endswith("-bench-node") and default_bench_paths:
            mounts = {m["mountPath"]: m for ctr in containers(d["spec"]["template"]["spec"])
                      for m in ctr.get("volumeMounts", [])}
            c.check("/host" in mounts and mounts["/host"].get("readOnly") is True,
                    f"{scen}: bench-node reads every layout through one read-only mount of the host root")


def _bytes(quantity):
    """A Kubernetes quantity or scan-images size ("3Gi", "2GiB", "500MB") in bytes."""
    m = re.fullmatch(r"([0-9]+)\s*([KMGT]?)(i?)B?", str(quantity).strip())
    if not m:
        raise ValueError(f"not a size: {quantity!r}")
    n, unit, binary = int(m[1]), m[2], m[3]
    power = " KMGT".index(unit or " ")
    return n * ((1024 if binary else 1000) ** power)


def check_scan_scratch(c, scen, docs):
    """Trivy exports each image into the scan pod's /tmp (docs/scan-images.md:
    about the image's compressed size), so /tmp must hold the largest image
    scan-images will scan plus 1Gi, or the kubelet evicts the pod mid-scan."""
    for d in docs:
        if d["kind"] != "DaemonSet" or not d["metadata"]["name"].endswith("-scan-images"):
            continue
        spec = d["spec"]["template"]["spec"]
        tmp = next((v for v in spec.get("volumes", []) if v["name"] == "tmp"), None)
        env = {e["name"]: e.get("value") for ctr in containers(spec) for e in ctr.get("env", [])}
        cap = env.get("NODEGUARD_MAX_IMAGE_SIZE")
        if not c.check(tmp is not None and cap, f"{scen}: scan-images has a /tmp volume and a --max-image-size"):
            continue
        limit = tmp["emptyDir"].get("sizeLimit")
        c.check(limit is not None and _bytes(limit) >= _bytes(cap) + (1 << 30),
                f"{scen}: scan-images /tmp sizeLimit {limit} >= max image size {cap} + 1Gi")


def check_namespaces(c, scen, values, docs, release):
    ns = release["namespace"]
    for d in docs:
        if d["kind"] in CLUSTER_SCOPED:
            continue
        want = ns
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-falco-rules"):
            want = ((values.get("falco") or {}).get("rules") or {}).get("namespace", "falco")
        c.check(d["metadata"].get("namespace") == want,
                f"{scen}: {d['kind']}/{d['metadata']['name']} in namespace {d['metadata'].get('namespace')}, want {want}")
    created = bool((values.get("namespace") or {}).get("create"))
    nss = [d for d in docs if d["kind"] == "Namespace"]
    c.check(len(nss) == (1 if created else 0) and all(n["metadata"]["name"] == ns for n in nss),
            f"{scen}: a Namespace object only when namespace.create asks ({len(nss)})")


def volume_type(v):
    return next(k for k in v if k != "name")


def check_openshift(c, scen, values, docs, scc_schema):
    """One SCC per component allowing exactly what its pods ask for, and a
    Role/RoleBinding letting only its ServiceAccount `use` it."""
    sccs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "SecurityContextConstraints"}
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    dss = [d for d in docs if d["kind"] == "DaemonSet"]
    c.check(len(sccs) == len(dss) == len(roles) == len(bindings), f"{scen}: one SCC, Role, RoleBinding per DaemonSet")
    for scc in sccs.values():
        errors = sorted(jsonschema.Draft7Validator(scc_schema).iter_errors(scc), key=str)
        c.check(not errors, f"{scen}: SCC {scc['metadata']['name']} matches the SCC API schema: "
                            f"{[e.message for e in errors]}")
    for d in dss:
        comp = d["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = d["spec"]["template"]["spec"]
        want = d["spec"]["template"]["metadata"]["annotations"].get("openshift.io/required-scc")
        scc = sccs.get(want)
        name = f"{scen}: SCC for {comp}"
        if not c.check(scc is not None, f"{name}: the pod names its SCC ({want})"):
            continue
        ctrs = containers(pod)
        privileged = any((x.get("securityContext") or {}).get("privileged") for x in ctrs)
        added = {cap for x in ctrs for cap in ((x.get("securityContext") or {}).get("capabilities") or {}).get("add") or []}
        vol_types = {volume_type(v) for v in pod.get("volumes", [])}
        se_types = {((x.get("securityContext") or {}).get("seLinuxOptions") or {}).get("type") for x in ctrs}
        se_opts = [(x.get("securityContext") or {}).get("seLinuxOptions") for x in ctrs]
        c.check(scc["allowHostPID"] == bool(pod.get("hostPID")), f"{name}: hostPID as the pod")
        c.check(not scc["allowHostNetwork"] and not scc["allowHostIPC"] and not scc["allowHostPorts"],
                f"{name}: no host network, IPC, ports")
        c.check(scc["allowPrivilegedContainer"] == privileged, f"{name}: privileged only as the pod")
        c.check(set(scc["allowedCapabilities"] or []) == (set() if privileged else added),
                f"{name}: capabilities exactly {sorted(added)} ({scc['allowedCapabilities']})")
        c.check(not scc["defaultAddCapabilities"], f"{name}: adds no default capabilities")
        c.check(privileged or scc["requiredDropCapabilities"] == ["ALL"], f"{name}: requires dropping ALL")
        c.check(set(scc["volumes"]) == vol_types, f"{name}: volume types {scc['volumes']} == the pod's {sorted(vol_types)}")
        c.check(scc["allowHostDirVolumePlugin"] == ("hostPath" in vol_types), f"{name}: hostPath only if used")
        c.check(scc["readOnlyRootFilesystem"] is True, f"{name}: read-only root file system enforced")
        c.check(scc["runAsUser"] == {"type": "MustRunAs", "uid": 0}
                and all((x.get("securityContext") or {}).get("runAsUser") == 0 for x in ctrs),
                f"{name}: runs as uid 0, as the pod asks")
        c.check(scc["seLinuxContext"]["type"] == "MustRunAs"
                and all(o == scc["seLinuxContext"].get("seLinuxOptions") for o in se_opts),
                f"{name}: SELinux context {scc['seLinuxContext']} == the containers' {se_opts}")
        c.check(se_types == {"spc_t"}, f"{name}: spc_t on OpenShift ({se_types})")
        c.check(scc["seccompProfiles"] == ["runtime/default"], f"{name}: seccomp runtime/default only")
        c.check(privileged or scc["allowPrivilegeEscalation"] is False, f"{name}: no privilege escalation")
        c.check(not scc.get("users") and not scc.get("groups"), f"{name}: granted by RBAC only")
        sa = pod["serviceAccountName"]
        role_ok = [r for r in roles.values()
                   if r["rules"] == [{"apiGroups": ["security.openshift.io"], "resources": ["securitycontextconstraints"],
                                      "resourceNames": [want], "verbs": ["use"]}]]
        c.check(len(role_ok) == 1, f"{name}: a Role allowing only `use` of {want}")
        if role_ok:
            rb = [b for b in bindings if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                          "name": role_ok[0]["metadata"]["name"]}]
            c.check(len(rb) == 1 and rb[0]["subjects"] == [{"kind": "ServiceAccount", "name": sa,
                                                            "namespace": d["metadata"]["namespace"]}],
                    f"{name}: bound to {sa} only")


def check_scenario_specifics(c, scen, values, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ds = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind.get("DaemonSet", [])}
    if scen == "default":
        c.check(set(ds) == set(ALLOWED_CAPS), f"{scen}: all four DaemonSets")
        c.check("Namespace" not in by_kind, f"{scen}: no Namespace object (helm --create-namespace works)")
        c.check(not any(k.startswith("container.apparmor") for d in ds.values() if d is not ds["bootstrap"]
                        for k in d["spec"]["template"]["metadata"].get("annotations", {})),
                f"{scen}: only the bootstrapper leaves the runtime's AppArmor profile")
        np = by_kind["NetworkPolicy"][0]["spec"]
        ports = sorted((p["port"], p["protocol"]) for rule in np["egress"] for p in rule["ports"])
        c.check(ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")], f"{scen}: egress only DNS and 443 ({ports})")
        c.check(np.get("ingress") == [] and "Ingress" in np["policyTypes"], f"{scen}: no ingress")
        c.check("ResourceQuota" in by_kind, f"{scen}: ResourceQuota for system-node-critical")
        c.check(all(d["spec"]["template"]["spec"].get("priorityClassName") == "system-node-critical"
                    for d in ds.values()), f"{scen}: system-node-critical")
        c.check("Secret" not in by_kind, f"{scen}: no Secret without credentials")
    if "fim" in ds:
        fim_env = {e["name"]: e.get("value") for ctr in containers(ds["fim"]["spec"]["template"]["spec"])
                   for e in ctr.get("env", [])}
        want = "watch" if scen == "fim-watch" else "periodic"
        c.check(fim_env.get("NODEGUARD_FIM_MODE") == want, f"{scen}: fim mode {want} ({fim_env.get('NODEGUARD_FIM_MODE')})")
    if scen == "component-off":
        c.check("scan-images" not in ds and len(ds) == 3, f"{scen}: scan-images disabled")
        c.check(all("scan-images" not in d["metadata"]["name"] for d in docs), f"{scen}: nothing of scan-images left")
    if scen in ("existing-secret", "qualys-secret"):
        vol = [v for v in ds["bootstrap"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "credentials"][0]
        sources = [src["secret"]["name"] for src in vol["projected"]["sources"]]
        c.check(sources[0] == values["credentials"]["existingSecret"], f"{scen}: uses existingSecret")
        chart_secrets = [d for d in by_kind.get("Secret", []) if d["metadata"]["name"] in sources]
        if scen == "existing-secret":
            c.check(not chart_secrets and len(sources) == 1, f"{scen}: creates no credentials Secret")
        else:
            # config.serverUri beside the operator's Secret: a Secret of its own, projected alongside.
            c.check(len(chart_secrets) == 1 and len(sources) == 2
                    and chart_secrets[0]["stringData"] == {"server_uri": values["config"]["serverUri"]},
                    f"{scen}: config.serverUri projected beside the existing Secret")
    if scen == "qualys-quickstart":
        # The Qualys chart's quick start, flag for flag: every object in the
        # release namespace, the credentials in the Secret, no Namespace object.
        secrets = by_kind.get("Secret", [])
        c.check(len(secrets) == 1 and secrets[0]["stringData"] == {
            "activation_id": values["credentials"]["activationId"],
            "customer_id": values["credentials"]["customerId"],
            "server_uri": values["config"]["serverUri"]}, f"{scen}: the credentials are in the Secret")
        vol = [v for v in ds["bootstrap"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "credentials"][0]
        c.check(vol["projected"]["sources"][0]["secret"]["name"] == secrets[0]["metadata"]["name"] if secrets else False,
                f"{scen}: the bootstrap pod mounts it")
        dump = json.dumps([d for d in docs if d["kind"] != "Secret"])
        c.check(values["credentials"]["activationId"] not in dump, f"{scen}: the activation id only in the Secret")
    if scen == "packages":
        cm = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("-bootstrap-config")]
        env = {e["name"]: e.get("value") for e in ds["bootstrap"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        c.check(len(cm) == 1 and env.get("NODEGUARD_PACKAGES_FILE") == "/etc/nodeguard/bootstrap/packages.toml"
                and env.get("NODEGUARD_CA_BUNDLE") == "/etc/nodeguard/bootstrap/ca.crt",
                f"{scen}: packages and CA bundle reach install-agent")
        if cm:
            import tomllib
            pkgs = tomllib.loads(cm[0]["data"]["packages.toml"]).get("package")
            c.check(pkgs == values["bootstrap"]["packages"], f"{scen}: packages.toml holds bootstrap.packages ({pkgs})")
            c.check(cm[0]["data"]["ca.crt"].strip() == values["bootstrap"]["caBundle"].strip(), f"{scen}: ca.crt")
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
    if scen == "openshift":
        c.check(len(by_kind.get("SecurityContextConstraints", [])) == 4, f"{scen}: four SCCs")


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
        "namespace.name (use helm --namespace)": {"namespace": {"name": "nodeguard"}},
        "activationId beside existingSecret": {"credentials": {"existingSecret": "s", "activationId": "a"}},
        "one credential under two names": {"credentials": {"activationId": "a", "values": {"ACTIVATION_ID": "b"}}},
        "package without sha256": {"bootstrap": {"packages": [{"format": "deb", "arch": "amd64", "version": "1",
                                                               "url": "https://m/p.deb"}]}},
        "package with url and path": {"bootstrap": {"packages": [{"format": "deb", "arch": "amd64", "version": "1",
                                                                  "url": "https://m/p.deb", "path": "/p.deb",
                                                                  "sha256": "0" * 64}]}},
        "two packages for one format and arch": {"bootstrap": {"packages": [
            {"format": "deb", "arch": "amd64", "version": "1", "url": "https://m/a.deb", "sha256": "1" * 64},
            {"format": "deb", "arch": "amd64", "version": "2", "url": "https://m/b.deb", "sha256": "2" * 64}]}},
        "unknown AppArmor profile": {"bootstrap": {"appArmorProfile": "unconfined"}},
        "Kubernetes below the floor": {"kubeVersionOverride": "1.24.0"},
        "control character in a credential": {"credentials": {"activationId": "a\nb"}},
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


def check_notes(c):
    """NOTES.txt gives the Pod Security one-liner for the release namespace."""
    notes = _chart().render(values={}, name="qualys-agent", namespace="qualys", is_install=True)
    text = next((t for p, t in notes.items() if p.endswith("NOTES.txt")), "")
    c.check("kubectl label --overwrite namespace qualys " in text
            and "pod-security.kubernetes.io/enforce=privileged" in text
            and "pod-security.kubernetes.io/warn=baseline" in text, f"NOTES.txt: the kubectl label one-liner\n{text}")
    c.check("not_configured" in text, "NOTES.txt: says what happens while not configured")


def check_alert_values(c):
    """bootstrap.registrationAlertAfter sets NodeguardAgentNotRegistered's `for`."""
    _, docs = render({"prometheusRule": {"enabled": True}, "bootstrap": {"registrationAlertAfter": "3h"}})
    rules = [r for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"] for r in g["rules"]]
    nr = [r for r in rules if r.get("alert") == "NodeguardAgentNotRegistered"]
    c.check(len(nr) == 1 and nr[0]["for"] == "3h" and "for 3h" in nr[0]["annotations"]["description"],
            f"bootstrap.registrationAlertAfter sets the registration alert's time ({nr})")
    nc = [r for r in rules if r.get("alert") == "NodeguardAgentNotConfigured"]
    c.check(len(nc) == 1 and nc[0]["expr"].strip() == "nodeguard_install_agent_configured == 0",
            "NodeguardAgentNotConfigured watches nodeguard_install_agent_configured")


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


_VALIDATED = {}


@functools.lru_cache(maxsize=None)
def _validator(version, kind, api_version):
    """kubernetes_validate.validate(..., strict=True), with the schema and its
    definitions loaded once per version instead of once per object (the
    loading is nearly all of its cost): the same files, the same validator."""
    schema_dir = f"v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(version=version, kind=kind, api_version=api_version)
    defs = _definitions(schema_dir, version)
    registry = Resource.from_contents(schema) @ Registry()
    registry = defs @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _definitions(schema_dir, version):
    return Resource.from_contents(kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version))


def kube_validate(c, scen, docs, versions):
    for version in versions:
        for d in docs:
            if d["apiVersion"].startswith(("monitoring.coreos.com/", "security.openshift.io/")):
                continue  # CRDs: not in Kubernetes' own schemas (SCCs: check_openshift)
            # The same object (ServiceAccounts, NetworkPolicy…) recurs in many
            # scenarios: validate each distinct one once per version.
            key = (version, json.dumps(d, sort_keys=True))
            if key not in _VALIDATED:
                try:
                    _validator(version, d["kind"], d["apiVersion"]).validate(d)
                    _VALIDATED[key] = (True, "")
                except jsonschema.ValidationError as e:
                    _VALIDATED[key] = (False, f"{e.message} at {list(e.absolute_path)}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    _VALIDATED[key] = (False, str(e))
            ok, err = _VALIDATED[key]
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
    for scen, values, release in scenario_values():
        report = hp.lint(str(CHART), values, strict=True, namespace=release["namespace"])
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
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    c.check(chart_meta.get("kubeVersion") == f">=1.{FLOOR_MINOR}.0-0",
            f"Chart.yaml kubeVersion is the supported floor 1.{FLOOR_MINOR} ({chart_meta.get('kubeVersion')})")
    scc_schema = json.loads(SCC_SCHEMA.read_text())
    rendered = {}
    for scen, values, release in scenario_values():
        try:
            text, docs = render(values, name=release["name"], namespace=release["namespace"])
            # As `helm install` renders it on each supported minor: the
            # rendering differs only before and from 1.30 (the AppArmor field).
            epochs = {e: render(values, name=release["name"], namespace=release["namespace"], kube_version=e)[1]
                      for e in (f"1.{FLOOR_MINOR}.0", f"1.{APPARMOR_FIELD_MINOR}.0")}
            per_version = {v: epochs[f"1.{FLOOR_MINOR}.0" if int(v.split(".")[1]) < APPARMOR_FIELD_MINOR
                                     else f"1.{APPARMOR_FIELD_MINOR}.0"] for v in KUBE_VERSIONS}
        except hp.HelmError as e:
            c.check(False, f"{scen}: renders: {e}")
            continue
        rendered[scen] = text
        yamllint(c, scen, text)
        for version, vdocs in per_version.items():
            kube_validate(c, scen, vdocs, [version])
            check_lsm(c, scen, values, vdocs, int(version.split(".")[1]))
        check_privileges(c, scen, values, docs)
        check_host_paths(c, scen, values, docs)
        check_scan_scratch(c, scen, docs)
        check_namespaces(c, scen, values, docs, release)
        check_scenario_specifics(c, scen, values, docs)
        if (values.get("openshift") or {}).get("enabled"):
            check_openshift(c, scen, values, docs, scc_schema)
    c.check({"default", "existing-secret", "falco", "component-off", "openshift", "qualys-quickstart",
             "qualys-secret", "packages"} <= set(rendered), "the issues' scenarios are all rendered")
    # The SCC schema can fail: a misspelt field, a missing required one.
    sccs = [d for d in yaml.safe_load_all(rendered.get("openshift", "")) if d and d["kind"] == "SecurityContextConstraints"]
    if c.check(bool(sccs), "openshift: SCCs rendered"):
        validator = jsonschema.Draft7Validator(scc_schema)
        c.check(not list(validator.iter_errors(sccs[0])), "the SCC schema accepts a rendered SCC")
        c.check(bool(list(validator.iter_errors({**sccs[0], "allowHostPid": True}))), "the SCC schema rejects a misspelt field")
        c.check(bool(list(validator.iter_errors({k: v for k, v in sccs[0].items() if k != "volumes"}))),
                "the SCC schema rejects a missing required field")
    check_falco_rules(c, yaml.safe_load((CHART / "files/falco/nodeguard_rules.yaml").read_text()))
    check_rejections(c)
    check_rollouts(c)
    check_alert_values(c)
    check_notes(c)
    if not args.no_checkov:
        checkov(c, rendered)

    header = ("# nodeguard: rendered from manifests/chart/nodeguard with default values, plus\n"
              f"# {json.dumps(PLAIN_MANIFEST_VALUES)} (a Namespace object; AppArmor by annotation, valid on 1.{FLOOR_MINOR}+).\n"
              "# Do not edit: regenerate with `python tests/deploy/check_chart.py --update`.\n"
              "# Install with `kubectl apply -f manifests/deploy/` (docs/deploy.md).\n")
    plain_text, plain_docs = render(PLAIN_MANIFEST_VALUES)
    default = header + "---\n" + plain_text
    # The shipped manifests hold on every supported minor, strictly.
    kube_validate(c, "manifests/deploy", plain_docs, KUBE_VERSIONS)
    check_lsm(c, "manifests/deploy", {}, plain_docs, FLOOR_MINOR)
    check_privileges(c, "manifests/deploy", PLAIN_MANIFEST_VALUES, plain_docs)
    check_host_paths(c, "manifests/deploy", PLAIN_MANIFEST_VALUES, plain_docs)
    check_namespaces(c, "manifests/deploy", PLAIN_MANIFEST_VALUES, plain_docs,
                     {"name": RELEASE, "namespace": RELEASE_NAMESPACE})
    ns = [d for d in plain_docs if d["kind"] == "Namespace"]
    labels = ns[0]["metadata"]["labels"] if ns else {}
    c.check(labels.get("pod-security.kubernetes.io/enforce") == "privileged"
            and labels.get("pod-security.kubernetes.io/warn") == "baseline"
            and labels.get("pod-security.kubernetes.io/audit") == "baseline",
            "manifests/deploy: the Namespace has PSS enforce privileged, warn/audit baseline")
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
