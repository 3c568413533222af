//! What `crictl` prints, and nothing else: serde mirrors of `ps -o json`,
//! `images -o json`, `inspect` and `version`, plus image ID and reference
//! normalisation.
//!
//! crictl prints CRI messages through Go's protojson: lowerCamelCase names,
//! 64-bit integers as strings, enums as names, empty values emitted. Older
//! (gogo jsonpb) builds print unset sub-messages as `null`, newer ones omit
//! them, so every field here is optional and `null` is accepted anywhere.
//! Fields that only some runtimes fill (`imageId`, `userSpecifiedImage`)
//! are never relied on alone. Nothing under `inspect`'s `.info` is used
//! except `pid`, which both containerd and CRI-O put there.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

/// `crictl ps -o json`.
#[derive(Debug, Default, Deserialize)]
pub struct PsOutput {
    /// The listed containers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
}

/// One element of `ps`' `containers`, or `inspect`'s `status`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container ID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// Sandbox (pod) ID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pod_sandbox_id: String,
    /// `{name, attempt}`.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// The image spec kubelet passed: usually the image ID.
    #[serde(default)]
    pub image: Option<ImageSpec>,
    /// containerd: the image ID; CRI-O: first repo digest or the ID;
    /// cri-dockerd: `docker-pullable://…` or `docker://…`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub image_ref: String,
    /// The image ID, on runtimes that fill it (CRI since Kubernetes 1.30).
    #[serde(default, deserialize_with = "null_as_default")]
    pub image_id: String,
    /// `CONTAINER_RUNNING`, …
    #[serde(default, deserialize_with = "null_as_default")]
    pub state: String,
    /// kubelet's `io.kubernetes.*` labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

/// Container metadata.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Metadata {
    /// The container name inside its pod.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

/// CRI `ImageSpec`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// The image as kubelet passed it (normally the image ID).
    #[serde(default, deserialize_with = "null_as_default")]
    pub image: String,
    /// The pod spec's image string (often empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_specified_image: String,
}

/// `crictl images -o json`.
#[derive(Debug, Default, Deserialize)]
pub struct ImagesOutput {
    /// The images in the runtime's store.
    #[serde(default, deserialize_with = "null_as_default")]
    pub images: Vec<Image>,
}

/// CRI `Image`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image ID: `sha256:<hex>` (containerd) or bare hex (CRI-O).
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// Fully qualified tags; empty for digest-only pulls.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    /// `repo@sha256:…`; empty for imported or locally built images.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_digests: Vec<String>,
    /// Size in bytes: a string in protojson (64-bit), a number in some builds.
    #[serde(default, deserialize_with = "size_in_bytes")]
    pub size: Option<u64>,
}

/// `crictl inspect ID` (verbose): `status` plus the runtime's `info`.
#[derive(Debug, Default, Deserialize)]
pub struct InspectOutput {
    /// CRI `ContainerStatus`.
    #[serde(default)]
    pub status: Option<Container>,
    /// Runtime-specific; only `pid` is read.
    #[serde(default)]
    pub info: Option<InspectInfo>,
}

/// The part of `inspect`'s `.info` both containerd and CRI-O share.
#[derive(Debug, Default, Deserialize)]
pub struct InspectInfo {
    /// The container's init process on the host.
    #[serde(default)]
    pub pid: Option<u32>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn size_in_bytes<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        },
    )
}

/// Parses `crictl ps -o json`.
pub fn parse_ps(json: &[u8]) -> Result<PsOutput> {
    serde_json::from_slice(json).context("`crictl ps -o json` printed invalid JSON")
}

/// Parses `crictl images -o json`.
pub fn parse_images(json: &[u8]) -> Result<ImagesOutput> {
    serde_json::from_slice(json).context("`crictl images -o json` printed invalid JSON")
}

/// Parses `crictl inspect` for one container: a bare object, or (crictl
/// 1.31+ given several IDs) an array whose first element is taken.
pub fn parse_inspect(json: &[u8]) -> Result<InspectOutput> {
    let value: serde_json::Value =
        serde_json::from_slice(json).context("`crictl inspect` printed invalid JSON")?;
    let value = match value {
        serde_json::Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    serde_json::from_value(value).context("`crictl inspect` printed an unexpected JSON shape")
}

/// `crictl version`'s `RuntimeName` and `RuntimeVersion` lines.
pub fn parse_version(text: &str) -> (Option<String>, Option<String>) {
    let field = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key)
                .then(|| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
    };
    (field("RuntimeName"), field("RuntimeVersion"))
}

/// The canonical image ID (`sha256:<64 lower-case hex>`) of a value that
/// *is* an image ID in one of the runtimes' spellings: `sha256:<hex>`
/// (containerd), bare hex (CRI-O), `docker://sha256:<hex>` (cri-dockerd).
/// `None` for anything else, e.g. a tag or a `repo@sha256:` digest
/// reference, which names a manifest rather than an image config.
pub fn normalize_image_id(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix("docker-pullable://")
        .or_else(|| v.strip_prefix("docker://"))
        .unwrap_or(v);
    let hex = v.strip_prefix("sha256:").unwrap_or(v);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// A fully qualified image reference, so that `nginx:1.27`,
/// `docker.io/nginx:1.27` and `docker.io/library/nginx:1.27` compare equal.
/// Strips cri-dockerd's `docker-pullable://` prefix; adds `:latest` to a
/// reference with neither tag nor digest.
pub fn normalize_reference(reference: &str) -> String {
    let r = reference.trim();
    let r = r
        .strip_prefix("docker-pullable://")
        .or_else(|| r.strip_prefix("docker://"))
        .unwrap_or(r);
    let (first, rest) = match r.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (r, None),
    };
    let is_registry = |s: &str| s.contains('.') || s.contains(':') || s == "localhost";
    let mut full = match rest {
        None => format!("docker.io/library/{r}"),
        Some(rest) if first == "docker.io" && !rest.contains('/') => {
            format!("docker.io/library/{rest}")
        }
        Some(_) if is_registry(first) => r.to_string(),
        Some(_) => format!("docker.io/{r}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// Splits a reference into `(repository, tag, digest)`, each possibly
/// empty: `reg/app:1.2@sha256:abc` → `("reg/app", "1.2", "sha256:abc")`.
pub fn split_reference(reference: &str) -> (String, String, String) {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => (reference, String::new()),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => (
            name[..slash + colon].to_string(),
            name[slash + colon + 1..].to_string(),
            digest,
        ),
        None => (name.to_string(), String::new(), digest),
    }
}

impl Container {
    /// The Kubernetes namespace, pod and container name from kubelet's
    /// labels (container name falls back to the CRI metadata).
    pub fn identity(&self) -> (String, String, String) {
        let label = |k: &str| self.labels.get(k).cloned().unwrap_or_default();
        let mut name = label("io.kubernetes.container.name");
        if name.is_empty() {
            name = self
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
        }
        (
            label("io.kubernetes.pod.namespace"),
            label("io.kubernetes.pod.name"),
            name,
        )
    }

    /// The image values to try, most authoritative first: `imageId`,
    /// `imageRef`, `image.image`, `image.userSpecifiedImage`; empty ones
    /// dropped.
    pub fn image_candidates(&self) -> Vec<&str> {
        let spec = self.image.as_ref();
        [
            Some(self.image_id.as_str()),
            Some(self.image_ref.as_str()),
            spec.map(|s| s.image.as_str()),
            spec.map(|s| s.user_specified_image.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8bab5b6b3e2a1a1c6a3c5f1e0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170";

    #[test]
    fn image_ids_normalise_across_runtimes() {
        let want = Some(format!("sha256:{HEX}"));
        assert_eq!(normalize_image_id(&format!("sha256:{HEX}")), want);
        assert_eq!(normalize_image_id(HEX), want, "CRI-O prints bare hex");
        assert_eq!(normalize_image_id(&format!("docker://sha256:{HEX}")), want);
        assert_eq!(
            normalize_image_id(&format!("SHA256:{}", HEX.to_uppercase())),
            None
        );
        assert_eq!(
            normalize_image_id(&format!("sha256:{}", HEX.to_uppercase())),
            want
        );
        assert_eq!(
            normalize_image_id(&format!("docker.io/library/nginx@sha256:{HEX}")),
            None
        );
        assert_eq!(normalize_image_id("nginx:1.27"), None);
        assert_eq!(normalize_image_id(""), None);
        assert_eq!(normalize_image_id(&format!("sha256:{}", &HEX[..63])), None);
    }

    #[test]
    fn references_compare_in_fully_qualified_form() {
        for (input, want) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("docker.io/nginx:1.27", "docker.io/library/nginx:1.27"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("quay.io/app/x:1", "quay.io/app/x:1"),
            ("localhost/busybox:1.35", "localhost/busybox:1.35"),
            ("registry:5000/app", "registry:5000/app:latest"),
            (
                "docker-pullable://nginx@sha256:abc",
                "docker.io/library/nginx@sha256:abc",
            ),
        ] {
            assert_eq!(normalize_reference(input), want, "input {input}");
        }
    }

    #[test]
    fn references_split_into_repository_tag_digest() {
        assert_eq!(
            split_reference("registry:5000/app:1.2@sha256:abc"),
            (
                "registry:5000/app".into(),
                "1.2".into(),
                "sha256:abc".into()
            )
        );
        assert_eq!(
            split_reference("registry:5000/app"),
            ("registry:5000/app".into(), String::new(), String::new())
        );
        assert_eq!(
            split_reference("quay.io/a/b@sha256:d"),
            ("quay.io/a/b".into(), String::new(), "sha256:d".into())
        );
    }

    #[test]
    fn version_output_gives_runtime_name_and_version() {
        let text = "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  v1\n";
        assert_eq!(
            parse_version(text),
            (Some("containerd".into()), Some("1.6.20~ds1".into()))
        );
        assert_eq!(parse_version("garbage"), (None, None));
    }

    #[test]
    fn null_sub_messages_from_old_crictl_are_accepted() {
        let json = br#"{"containers":[{"id":"c1","podSandboxId":null,"metadata":null,
            "image":null,"imageRef":"sha256:x","state":"CONTAINER_RUNNING","labels":null,
            "annotations":null}]}"#;
        let ps = parse_ps(json).unwrap();
        assert_eq!(ps.containers.len(), 1);
        assert_eq!(ps.containers[0].image_candidates(), vec!["sha256:x"]);
        let images = parse_images(br#"{"images":[{"id":"x","repoTags":null,"repoDigests":null,"size":"12","uid":null,"spec":null},{"id":"y","size":34},{"id":"z","size":null}]}"#).unwrap();
        assert!(images.images[0].repo_tags.is_empty());
        let sizes: Vec<Option<u64>> = images.images.iter().map(|i| i.size).collect();
        assert_eq!(sizes, vec![Some(12), Some(34), None]);
        assert!(parse_ps(br#"{"containers":null}"#)
            .unwrap()
            .containers
            .is_empty());
        assert!(parse_ps(b"{}").unwrap().containers.is_empty());
    }

    #[test]
    fn garbage_is_an_error_naming_the_command() {
        let err = parse_ps(b"level=fatal msg=\"connect: no such file\"").unwrap_err();
        assert!(format!("{err:#}").contains("crictl ps -o json"), "{err:#}");
        let err = parse_images(br#"{"images": 3}"#).unwrap_err();
        assert!(format!("{err:#}").contains("crictl images"), "{err:#}");
    }

    #[test]
    fn inspect_accepts_object_and_array_forms() {
        let one =
            br#"{"status":{"id":"c1","imageRef":"sha256:x"},"info":{"pid":42,"sandboxID":"p"}}"#;
        let parsed = parse_inspect(one).unwrap();
        assert_eq!(parsed.info.unwrap().pid, Some(42));
        let many = br#"[{"status":{"id":"c1"},"info":{"pid":7}},{"status":{"id":"c2"}}]"#;
        let parsed = parse_inspect(many).unwrap();
        assert_eq!(parsed.status.unwrap().id, "c1");
        let quiet = br#"{"status":{"id":"c1"}}"#;
        assert!(
            parse_inspect(quiet).unwrap().info.is_none(),
            "-q drops .info"
        );
    }

    fn fixture(runtime: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/scan-images/crictl/{runtime}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn containerd_inspect_capture_gives_status_and_pid() {
        // Captured from containerd 1.6 through the stand-in: `.info.config`
        // holds what kubelet sent, `.status.image.image` the first tag.
        let parsed = parse_inspect(&fixture("containerd", "inspect-app.json")).unwrap();
        let status = parsed.status.unwrap();
        assert_eq!(
            status.identity(),
            ("shop".into(), "web-0".into(), "app".into())
        );
        assert!(
            status.image_ref.starts_with("sha256:"),
            "{}",
            status.image_ref
        );
        assert!(normalize_image_id(&status.image_ref).is_some());
        assert!(parsed.info.unwrap().pid.unwrap() > 0);
    }

    #[test]
    fn crio_inspect_has_hex_image_id_and_digest_ref() {
        let parsed = parse_inspect(&fixture("crio", "inspect-d1.json")).unwrap();
        let status = parsed.status.unwrap();
        assert_eq!(
            status.image_candidates()[0].len(),
            64,
            "bare hex imageId first"
        );
        assert!(status.image_ref.contains("@sha256:"));
        assert_eq!(parsed.info.unwrap().pid, Some(4242));
    }

    #[test]
    fn identity_comes_from_kubelet_labels() {
        let c: Container = serde_json::from_str(
            r#"{"metadata":{"name":"meta-name"},"labels":{"io.kubernetes.pod.namespace":"ns",
            "io.kubernetes.pod.name":"p","io.kubernetes.container.name":"c"}}"#,
        )
        .unwrap();
        assert_eq!(c.identity(), ("ns".into(), "p".into(), "c".into()));
        let bare: Container = serde_json::from_str(r#"{"metadata":{"name":"meta-name"}}"#).unwrap();
        assert_eq!(
            bare.identity(),
            (String::new(), String::new(), "meta-name".into())
        );
    }
}
