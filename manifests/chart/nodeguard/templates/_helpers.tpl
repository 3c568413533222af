{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "nodeguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, unless it already contains the chart name. */}}
{{- define "nodeguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nodeguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every namespaced object goes into the release namespace (helm --namespace). */}}
{{- define "nodeguard.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/*
The Kubernetes version the manifests are for: kubeVersionOverride, else the
cluster's (helm install/upgrade) or `helm template --kube-version`.
*/}}
{{- define "nodeguard.kubeVersion" -}}
{{- $v := default .Capabilities.KubeVersion.Version .Values.kubeVersionOverride }}
{{- if not (semverCompare ">=1.25.0-0" $v) }}
{{- fail (printf "Kubernetes %s is not supported: nodeguard needs 1.25 or newer (Pod Security admission; docs/deploy.md)" $v) }}
{{- end }}
{{- $v }}
{{- end }}

{{/* "true" when the API has securityContext.appArmorProfile (GA in 1.30). */}}
{{- define "nodeguard.hasAppArmorField" -}}
{{- if semverCompare ">=1.30.0-0" (include "nodeguard.kubeVersion" .) }}true{{ end }}
{{- end }}

{{/*
The SELinux type a component runs as: its `seLinuxType` value; on OpenShift
(RHCOS: SELinux enforcing, host files keep their host labels) spc_t when
unset, since container_t may read neither the host files nor the CRI socket
(docs/deploy.md). (dict "ctx" $ "values" .Values.fim)
*/}}
{{- define "nodeguard.seLinuxType" -}}
{{- $t := .values.seLinuxType | default "" }}
{{- if and (not $t) .ctx.Values.openshift.enabled }}{{ $t = "spc_t" }}{{ end }}
{{- $t }}
{{- end }}

{{/*
AppArmor, pod template annotation (every supported version honours it; the
only way before 1.30): (dict "container" "bootstrap" "values" .Values.bootstrap).
*/}}
{{- define "nodeguard.appArmorAnnotation" -}}
{{- $p := .values.appArmorProfile | default "" }}
{{- if $p }}
{{- $v := ternary "unconfined" (ternary "runtime/default" (printf "localhost/%s" (trimPrefix "Localhost/" $p)) (eq $p "RuntimeDefault")) (eq $p "Unconfined") }}
container.apparmor.security.beta.kubernetes.io/{{ .container }}: {{ $v }}
{{- end }}
{{- end }}

{{/*
The container's LSM settings, inside its securityContext: the appArmorProfile
field from 1.30 (it must agree with the annotation, which the API server
checks) and the SELinux type. (dict "ctx" $ "values" .Values.bootstrap)
*/}}
{{- define "nodeguard.lsmSecurityContext" -}}
{{- $p := .values.appArmorProfile | default "" }}
{{- if and $p (include "nodeguard.hasAppArmorField" .ctx) }}
appArmorProfile:
  {{- if hasPrefix "Localhost/" $p }}
  type: Localhost
  localhostProfile: {{ trimPrefix "Localhost/" $p | quote }}
  {{- else }}
  type: {{ $p }}
  {{- end }}
{{- end }}
{{- $t := include "nodeguard.seLinuxType" . }}
{{- if $t }}
seLinuxOptions:
  {{- if .ctx.Values.openshift.enabled }}
  # Fully specified, as the component's SecurityContextConstraints requires
  # (no MCS level from the namespace).
  user: system_u
  role: system_r
  type: {{ $t }}
  level: s0
  {{- else }}
  type: {{ $t }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Pod template annotations every component shares: the AppArmor annotation and,
on OpenShift, the SCC the pod must be admitted under.
(dict "ctx" $ "component" "fim" "values" .Values.fim)
*/}}
{{- define "nodeguard.podAnnotations" -}}
{{- include "nodeguard.appArmorAnnotation" (dict "container" .component "values" .values) }}
{{- if .ctx.Values.openshift.enabled }}
openshift.io/required-scc: {{ include "nodeguard.sccName" . }}
{{- end }}
{{- end }}

{{/* Cluster-scoped, so the release namespace is part of the name. */}}
{{- define "nodeguard.sccName" -}}
{{- printf "%s-%s-%s" .ctx.Release.Namespace (include "nodeguard.fullname" .ctx) .component | trunc 253 }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "nodeguard.labels" -}}
helm.sh/chart: {{ include "nodeguard.chart" . }}
app.kubernetes.io/name: {{ include "nodeguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nodeguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "fim"). */}}
{{- define "nodeguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodeguard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "nodeguard.componentLabels" -}}
{{ include "nodeguard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* image reference: (dict "ctx" $ "image" .Values.scanImages.image) merges over .Values.image. */}}
{{- define "nodeguard.image" -}}
{{- $base := .ctx.Values.image }}
{{- $img := default (dict) .image }}
{{- $registry := default $base.registry $img.registry }}
{{- $repository := default $base.repository $img.repository }}
{{- $tag := default (default .ctx.Chart.AppVersion $base.tag) $img.tag }}
{{- $digest := default $base.digest $img.digest }}
{{- if and $img.repository (not $img.digest) }}{{ $digest = "" }}{{ end }}
{{- $ref := ternary $repository (printf "%s/%s" $registry $repository) (empty $registry) }}
{{- if $digest }}
{{- printf "%s@%s" $ref $digest }}
{{- else }}
{{- printf "%s:%s" $ref $tag }}
{{- end }}
{{- end }}

{{/*
The credential files the chart puts in its Secret, as JSON: credentials.values
plus the Qualys chart's names (credentials.activationId, customerId,
config.serverUri, httpsProxy) under the profile's keys. One key given twice
is an error naming both values.
*/}}
{{- define "nodeguard.credentialValues" -}}
{{- $out := deepCopy (.Values.credentials.values | default dict) }}
{{- $named := list
  (list "activation_id" .Values.credentials.activationId "credentials.activationId")
  (list "customer_id" .Values.credentials.customerId "credentials.customerId")
  (list "server_uri" .Values.config.serverUri "config.serverUri")
  (list "https_proxy" .Values.config.httpsProxy "config.httpsProxy") }}
{{- range $named }}
{{- $key := index . 0 }}{{ $val := index . 1 }}{{ $name := index . 2 }}
{{- if $val }}
{{- if or (hasKey $out $key) (hasKey $out (upper $key)) }}
{{- fail (printf "credentials: %s and credentials.values.%s set the same credential; set one of them" $name (ternary $key (upper $key) (hasKey $out $key))) }}
{{- end }}
{{- $_ := set $out $key $val }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Settings (config.*) that go beside an existingSecret, as JSON. */}}
{{- define "nodeguard.configValues" -}}
{{- $out := dict }}
{{- with .Values.config.serverUri }}{{ $_ := set $out "server_uri" . }}{{ end }}
{{- with .Values.config.httpsProxy }}{{ $_ := set $out "https_proxy" . }}{{ end }}
{{- toJson $out }}
{{- end }}

{{/* Name of the credentials Secret: hash-suffixed when the chart creates it. */}}
{{- define "nodeguard.credentialsSecret" -}}
{{- $vals := include "nodeguard.credentialValues" . | fromJson }}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if $vals }}
{{- printf "%s-credentials-%s" (include "nodeguard.fullname" .) (toJson $vals | sha256sum | trunc 10) }}
{{- else }}
{{- printf "%s-credentials" (include "nodeguard.fullname" .) }}
{{- end }}
{{- end }}

{{/* The chart's Secret of config.* values beside an existingSecret ("" when none). */}}
{{- define "nodeguard.configSecret" -}}
{{- $vals := include "nodeguard.configValues" . | fromJson }}
{{- if and .Values.credentials.existingSecret $vals }}
{{- printf "%s-config-%s" (include "nodeguard.fullname" .) (toJson $vals | sha256sum | trunc 10) }}
{{- end }}
{{- end }}

{{- define "nodeguard.fimKeySecret" -}}
{{- if .Values.fim.existingKeySecret }}
{{- .Values.fim.existingKeySecret }}
{{- else if .Values.fim.key }}
{{- printf "%s-fim-key-%s" (include "nodeguard.fullname" .) (.Values.fim.key | sha256sum | trunc 10) }}
{{- end }}
{{- end }}

{{/*
Pod-level settings every DaemonSet shares: (dict "ctx" $ "component" "fim" "values" .Values.fim).
*/}}
{{- define "nodeguard.podCommon" -}}
{{- $ctx := .ctx }}
serviceAccountName: {{ include "nodeguard.fullname" $ctx }}-{{ .component }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ $ctx.Values.terminationGracePeriodSeconds }}
{{- with $ctx.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $ctx.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $ctx.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $ctx.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The loop's environment (scripts/lib.sh) and the tools' common variables. */}}
{{- define "nodeguard.loopEnv" -}}
{{- $ctx := .ctx }}
{{- $loop := $ctx.Values.loop }}
- name: NODEGUARD_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- if not .noHostRoot }}
- name: NODEGUARD_HOST_ROOT
  value: /host
{{- end }}
- name: NODEGUARD_LOOP_INTERVAL
  value: {{ .values.intervalSeconds | quote }}
- name: NODEGUARD_LOOP_SPLAY
  value: {{ .values.splaySeconds | quote }}
{{- if not (kindIs "invalid" $loop.jitterSeconds) }}
- name: NODEGUARD_LOOP_JITTER
  value: {{ $loop.jitterSeconds | quote }}
{{- end }}
{{- with $loop.window }}
- name: NODEGUARD_LOOP_WINDOW
  value: {{ . | quote }}
{{- end }}
- name: NODEGUARD_LOOP_OUTPUT
  value: {{ $loop.output | quote }}
- name: NODEGUARD_LOOP_KEEP
  value: {{ $loop.keep | quote }}
- name: NODEGUARD_LOOP_BACKOFF_INITIAL
  value: {{ $loop.backoffInitialSeconds | quote }}
- name: NODEGUARD_LOOP_RUN_TIMEOUT
  value: {{ $loop.runTimeoutSeconds | quote }}
- name: NODEGUARD_LOOP_NICE
  value: {{ $loop.nice | quote }}
- name: NODEGUARD_LOOP_RESULTS_DIR
  value: /var/lib/nodeguard/results/{{ .component }}
- name: NODEGUARD_LOOP_STATE_DIR
  value: /run/nodeguard
{{- if $ctx.Values.hostPaths.textfileCollector }}
- name: NODEGUARD_LOOP_TEXTFILE_DIR
  value: /var/lib/nodeguard-textfile
{{- end }}
{{- range $k, $v := .values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* Volumes every component has: scratch /tmp, loop state, results, metrics. */}}
{{- define "nodeguard.commonVolumes" -}}
- name: tmp
  emptyDir:
    {{- /* scan-images: Trivy exports each image into TMPDIR (about its
    compressed size; docs/scan-images.md), so its /tmp is sized apart. */}}
    sizeLimit: {{ if eq .component "scan-images" }}{{ .ctx.Values.scanImages.tmpSizeLimit }}{{ else }}1Gi{{ end }}
- name: state
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
- name: results
  hostPath:
    path: {{ .ctx.Values.hostPaths.state }}/results/{{ .component }}
    type: DirectoryOrCreate
{{- if .ctx.Values.hostPaths.textfileCollector }}
- name: textfile
  hostPath:
    path: {{ .ctx.Values.hostPaths.textfileCollector }}
    type: DirectoryOrCreate
{{- end }}
{{- end }}

{{- define "nodeguard.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /run/nodeguard
- name: results
  mountPath: /var/lib/nodeguard/results/{{ .component }}
{{- if .ctx.Values.hostPaths.textfileCollector }}
- name: textfile
  mountPath: /var/lib/nodeguard-textfile
{{- end }}
{{- end }}

{{/*
Read-only host mounts under /host: (dict "paths" (list "/")). `type:
Directory` makes the kubelet check the path and leave the pod in
ContainerCreating when it is missing, so it is used only for paths every node
has; any other path gets no type (no check).
*/}}
{{- define "nodeguard.alwaysPresentPaths" -}}
{{- toJson (list "/" "/etc" "/proc" "/sys" "/usr" "/var/lib/kubelet") }}
{{- end }}

{{- define "nodeguard.hostPathVolumes" -}}
{{- $always := include "nodeguard.alwaysPresentPaths" . | fromJsonArray }}
{{- range $i, $p := .paths }}
- name: host-{{ $i }}
  hostPath:
    path: {{ $p }}
    {{- if has $p $always }}
    type: Directory
    {{- end }}
{{- end }}
{{- end }}

{{- define "nodeguard.hostPathMounts" -}}
{{- range $i, $p := .paths }}
- name: host-{{ $i }}
  mountPath: {{ if eq $p "/" }}/host{{ else }}/host{{ $p }}{{ end }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Readiness: the last run did not fail (bootstrap: install-agent status, live). */}}
{{- define "nodeguard.readiness" -}}
readinessProbe:
  exec:
    command: ["/opt/nodeguard/scripts/{{ .script }}", "ready"]
  periodSeconds: {{ .period | default 30 }}
  timeoutSeconds: 10
  failureThreshold: 1
{{- end }}

{{/* Container security context of the unprivileged tools: (dict "ctx" $ "values" .Values.fim "add" (list …)). */}}
{{- define "nodeguard.restrictedSecurityContext" -}}
securityContext:
  privileged: false
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsUser: 0
  runAsGroup: 0
  capabilities:
    drop: ["ALL"]
    {{- with .add }}
    add: {{ toJson . }}
    {{- end }}
  seccompProfile:
    type: RuntimeDefault
  {{- with include "nodeguard.lsmSecurityContext" (dict "ctx" .ctx "values" .values) | trim }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
checkov skips, each with its reason, as checkov's own metadata annotations:
(dict "checks" (list "CKV_K8S_17" …)). The reasons are the privilege claim in
words; docs/deploy.md lists them and tests/deploy/check_chart.py allows no other.
*/}}
{{- define "nodeguard.checkovSkips" -}}
{{- $reasons := dict
  "CKV_K8S_8" "no liveness probe: the loop bounds every run with a timeout and every sleep is interruptible, so a restart could only cut a run short; readiness reports the last run"
  "CKV_K8S_15" "IfNotPresent: pin image.digest in production; Always would make node-critical pods depend on the registry at every restart"
  "CKV_K8S_17" "hostPID: reads the host's processes (bench-node: kubelet command line) or enters PID 1's namespaces (bootstrap)"
  "CKV_K8S_23" "root: reads root-owned host files and sockets as their owner, with all capabilities dropped except the listed ones"
  "CKV_K8S_40" "uid 0: see CKV_K8S_23; a high uid could not read the host files at all"
  "CKV_K8S_25" "added capabilities: only those listed in the container's securityContext, each explained in the template"
  "CKV_K8S_39" "SYS_ADMIN: setns into the host's mount namespace to run host commands as host systemd units (install-agent)"
  "CKV_K8S_43" "tag: set image.digest to pull by digest"
  "CKV_K8S_16" "privileged: opt-in (bootstrap.privileged) for hosts whose LSM confines even the host-namespace commands"
  "CKV_K8S_20" "privilege escalation: implied by the opt-in privileged mode (CKV_K8S_16)"
  "CKV_K8S_28" "NET_RAW: a privileged container holds every capability (CKV_K8S_16); a drop list would only pretend otherwise"
  "CKV_K8S_37" "capabilities: a privileged container holds every capability (CKV_K8S_16); a drop list would only pretend otherwise"
}}
{{- range $i, $check := .checks }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $check (index $reasons $check) | quote }}
{{- end }}
{{- end }}

{{/* Pod security context: the runtime's default seccomp profile for every pod. */}}
{{- define "nodeguard.podSecurityContext" -}}
securityContext:
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/*
The bootstrap pod's volumes (also read by the OpenShift SCC for its volume
types). The credentials are optional: without them install-agent reports
not_configured (exit 8) and names the values to set; the pod runs, unready,
instead of waiting in ContainerCreating for a Secret, and picks the Secret up
when it is created.
*/}}
{{- define "nodeguard.bootstrap.volumes" -}}
{{- $values := .Values.bootstrap }}
{{- include "nodeguard.commonVolumes" (dict "ctx" . "component" "bootstrap") }}
- name: credentials
  projected:
    defaultMode: 0400
    sources:
      - secret:
          name: {{ include "nodeguard.credentialsSecret" . }}
          optional: true
      {{- with include "nodeguard.configSecret" . }}
      - secret:
          name: {{ . }}
      {{- end }}
{{- if $values.profileToml }}
- name: profile
  configMap:
    name: {{ include "nodeguard.fullname" . }}-bootstrap-profile
    defaultMode: 0444
{{- end }}
{{- if or $values.packages $values.caBundle }}
- name: bootstrap-config
  configMap:
    name: {{ include "nodeguard.fullname" . }}-bootstrap-config
    defaultMode: 0444
{{- end }}
{{- end }}

{{/* The namespace's Pod Security labels (also the `kubectl label` one-liner in NOTES.txt). */}}
{{- define "nodeguard.podSecurityLabels" -}}
{{- $pss := .Values.namespace.podSecurity -}}
pod-security.kubernetes.io/enforce: {{ $pss.enforce }}
pod-security.kubernetes.io/enforce-version: {{ $pss.version }}
pod-security.kubernetes.io/warn: {{ $pss.warn }}
pod-security.kubernetes.io/warn-version: {{ $pss.version }}
pod-security.kubernetes.io/audit: {{ $pss.audit }}
pod-security.kubernetes.io/audit-version: {{ $pss.version }}
{{- end }}

{{- define "nodeguard.podSecurityLabelCommand" -}}
kubectl label --overwrite namespace {{ .Release.Namespace }}
{{- range $k, $v := include "nodeguard.podSecurityLabels" . | fromYaml }} {{ $k }}={{ $v }}{{ end }}
{{- end }}
