//! The join of `crictl ps` and `crictl images`: every running container
//! attached to exactly one image, keyed by normalised image ID, so each
//! image is scanned once however many tags and containers it has.
//!
//! Per container, the first of `imageId`, `imageRef`, `image.image`,
//! `image.userSpecifiedImage` that is an image ID in any runtime's spelling
//! and matches an image wins; failing that, a value equal (fully
//! qualified) to a repo digest or tag of an image. Containers still
//! unmatched are returned for a per-container `crictl inspect`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::crictl::{normalize_image_id, normalize_reference, Container, Image};

/// A container as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ContainerRef {
    /// Kubernetes namespace (`io.kubernetes.pod.namespace`).
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// CRI container ID.
    pub container_id: String,
}

/// One unique image and the containers running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// `sha256:<hex>`; for an image the runtime could not identify, the
    /// reference the container named.
    pub image_id: String,
    /// Sorted, as `crictl images` printed them.
    pub repo_tags: Vec<String>,
    /// Sorted `repo@sha256:…` values.
    pub repo_digests: Vec<String>,
    /// Sorted by namespace, pod, container.
    pub containers: Vec<ContainerRef>,
    /// False when no `crictl images` entry matched (the image vanished
    /// from the store, or the runtime does not list it).
    pub in_store: bool,
    /// Size in bytes, as the runtime reports it.
    pub size: Option<u64>,
}

/// Result of the join.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Unique images, sorted by image ID.
    pub images: Vec<ImageEntry>,
    /// Containers no image matched; to be looked up with `crictl inspect`.
    pub unresolved: Vec<Container>,
}

/// Looks images up by normalised ID, digest and tag.
#[derive(Debug)]
pub struct ImageIndex<'a> {
    images: &'a [Image],
    by_id: HashMap<String, usize>,
    by_reference: HashMap<String, usize>,
}

impl<'a> ImageIndex<'a> {
    /// Indexes `crictl images` output.
    pub fn new(images: &'a [Image]) -> Self {
        let mut by_id = HashMap::new();
        let mut by_reference = HashMap::new();
        for (i, image) in images.iter().enumerate() {
            if let Some(id) = normalize_image_id(&image.id) {
                by_id.insert(id, i);
            }
            for reference in image.repo_digests.iter().chain(&image.repo_tags) {
                by_reference.insert(normalize_reference(reference), i);
            }
        }
        Self {
            images,
            by_id,
            by_reference,
        }
    }

    /// The image whose ID, digest or tag one of `candidates` names.
    pub fn find(&self, candidates: &[&str]) -> Option<&'a Image> {
        let by_id = candidates
            .iter()
            .find_map(|c| normalize_image_id(c).and_then(|id| self.by_id.get(&id)));
        let index = by_id.or_else(|| {
            candidates
                .iter()
                .find_map(|c| self.by_reference.get(&normalize_reference(c)))
        })?;
        Some(&self.images[*index])
    }
}

/// Builds the container reference shown in reports.
pub fn container_ref(container: &Container) -> ContainerRef {
    let (namespace, pod, name) = container.identity();
    ContainerRef {
        namespace,
        pod,
        container: name,
        container_id: container.id.clone(),
    }
}

/// Joins containers to images; see the module docs.
pub fn join(containers: &[Container], images: &[Image]) -> Inventory {
    let index = ImageIndex::new(images);
    let mut grouped: BTreeMap<String, ImageEntry> = BTreeMap::new();
    let mut unresolved = Vec::new();
    for container in containers {
        match index.find(&container.image_candidates()) {
            Some(image) => attach(&mut grouped, image, container),
            None => unresolved.push(container.clone()),
        }
    }
    Inventory {
        images: finish(grouped),
        unresolved,
    }
}

/// Adds containers resolved by `crictl inspect` (their `status`) to an
/// inventory. A container whose image is still not in the store is kept
/// under its image ID (or, lacking one, the reference it names), marked
/// `in_store = false`, so the report still lists it.
pub fn add_inspected(inventory: &mut Inventory, inspected: &[Container], images: &[Image]) {
    let index = ImageIndex::new(images);
    let mut grouped: BTreeMap<String, ImageEntry> = std::mem::take(&mut inventory.images)
        .into_iter()
        .map(|e| (e.image_id.clone(), e))
        .collect();
    for container in inspected {
        let candidates = container.image_candidates();
        if let Some(image) = index.find(&candidates) {
            attach(&mut grouped, image, container);
            continue;
        }
        let key = candidates
            .iter()
            .find_map(|c| normalize_image_id(c))
            .or_else(|| candidates.first().map(|c| (*c).to_string()))
            .unwrap_or_else(|| format!("unknown-image-of-{}", container.id));
        let (tags, digests): (Vec<String>, Vec<String>) = candidates
            .iter()
            .filter(|c| normalize_image_id(c).is_none())
            .map(|c| (*c).to_string())
            .partition(|c| !c.contains('@'));
        let entry = grouped.entry(key.clone()).or_insert_with(|| ImageEntry {
            image_id: key,
            repo_tags: tags,
            repo_digests: digests,
            containers: Vec::new(),
            in_store: false,
            size: None,
        });
        entry.containers.push(container_ref(container));
    }
    inventory.images = finish(grouped);
}

fn attach(grouped: &mut BTreeMap<String, ImageEntry>, image: &Image, container: &Container) {
    let id = normalize_image_id(&image.id).unwrap_or_else(|| image.id.clone());
    let entry = grouped.entry(id.clone()).or_insert_with(|| ImageEntry {
        image_id: id,
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        containers: Vec::new(),
        in_store: true,
        size: image.size,
    });
    entry.containers.push(container_ref(container));
}

fn finish(grouped: BTreeMap<String, ImageEntry>) -> Vec<ImageEntry> {
    grouped
        .into_values()
        .map(|mut e| {
            e.repo_tags.sort();
            e.repo_tags.dedup();
            e.repo_digests.sort();
            e.repo_digests.dedup();
            e.containers.sort();
            e.containers.dedup();
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crictl::{parse_images, parse_ps};

    fn fixture(runtime: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/scan-images/crictl/{runtime}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn joined(runtime: &str) -> Inventory {
        let ps = parse_ps(&fixture(runtime, "ps.json")).unwrap();
        let images = parse_images(&fixture(runtime, "images.json")).unwrap();
        join(&ps.containers, &images.images)
    }

    #[test]
    fn containerd_containers_join_on_image_id_and_dedup() {
        let inv = joined("containerd");
        assert!(inv.unresolved.is_empty(), "{:?}", inv.unresolved);
        let ids: Vec<&str> = inv.images.iter().map(|i| i.image_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let nginx = inv
            .images
            .iter()
            .find(|i| i.repo_tags.iter().any(|t| t.contains("nginx")))
            .unwrap();
        assert_eq!(nginx.containers.len(), 3, "three replicas, one image");
        assert_eq!(
            nginx.repo_tags,
            vec![
                "docker.io/library/nginx:1.27".to_string(),
                "docker.io/library/nginx:stable".to_string()
            ]
        );
        assert_eq!(nginx.containers[0].namespace, "shop");
        assert!(nginx.in_store);
    }

    #[test]
    fn crio_bare_hex_ids_join() {
        let inv = joined("crio");
        assert!(inv.unresolved.is_empty(), "{:?}", inv.unresolved);
        assert_eq!(inv.images.len(), 2);
        for image in &inv.images {
            assert!(
                image.image_id.starts_with("sha256:"),
                "normalised: {}",
                image.image_id
            );
        }
        let ovn = inv
            .images
            .iter()
            .find(|i| i.containers.iter().any(|c| c.pod.starts_with("ovnkube")))
            .unwrap();
        assert_eq!(ovn.containers.len(), 2);
        assert_eq!(ovn.containers[0].namespace, "openshift-ovn-kubernetes");
    }

    #[test]
    fn tag_and_digest_references_join_when_no_id_matches() {
        let images: Vec<Image> = serde_json::from_str(
            r#"[{"id":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
                 "repoTags":["docker.io/library/redis:7"],
                 "repoDigests":["docker.io/library/redis@sha256:abcd"]}]"#,
        )
        .unwrap();
        let by_tag: Container =
            serde_json::from_str(r#"{"id":"a","image":{"image":"redis:7"}}"#).unwrap();
        let by_digest: Container =
            serde_json::from_str(r#"{"id":"b","imageRef":"docker-pullable://redis@sha256:abcd"}"#)
                .unwrap();
        let stranger: Container =
            serde_json::from_str(r#"{"id":"c","image":{"image":"other:1"}}"#).unwrap();
        let inv = join(&[by_tag, by_digest, stranger], &images);
        assert_eq!(inv.images.len(), 1);
        assert_eq!(inv.images[0].containers.len(), 2);
        assert_eq!(inv.unresolved.len(), 1);
        assert_eq!(inv.unresolved[0].id, "c");
    }

    #[test]
    fn inspected_containers_join_or_stand_alone() {
        let images: Vec<Image> = serde_json::from_str(
            r#"[{"id":"2222222222222222222222222222222222222222222222222222222222222222","repoTags":["quay.io/x/y:1"]}]"#,
        )
        .unwrap();
        let mut inv = Inventory::default();
        let known: Container = serde_json::from_str(
            r#"{"id":"k","imageId":"2222222222222222222222222222222222222222222222222222222222222222"}"#,
        )
        .unwrap();
        let gone: Container = serde_json::from_str(
            r#"{"id":"g","image":{"image":"quay.io/gone:2"},
                "imageRef":"sha256:3333333333333333333333333333333333333333333333333333333333333333"}"#,
        )
        .unwrap();
        add_inspected(&mut inv, &[known, gone], &images);
        assert_eq!(inv.images.len(), 2);
        assert!(inv.images[0].in_store);
        let orphan = &inv.images[1];
        assert!(!orphan.in_store);
        assert_eq!(orphan.image_id, format!("sha256:{}", "3".repeat(64)));
        assert_eq!(orphan.repo_tags, vec!["quay.io/gone:2".to_string()]);
    }
}
