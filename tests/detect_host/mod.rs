//! Black-box tests for `detect-host`.
//!
//! - Every host of Ansible's distribution-facts corpus
//!   (`../shared/fixtures/os-release/ansible/*.json`) is materialised as a
//!   host root and detected; the result is checked against a reviewed table
//!   below and cross-checked against Ansible's own answer, with every
//!   deliberate difference listed.
//! - Our own host roots (`tests/fixtures/detect-host/<case>/rootfs`, from
//!   the distributions' published os-release files) are run through the
//!   built binary and compared with `expected.json`
//!   (`NODEGUARD_UPDATE_GOLDEN=1` rewrites those files for review in a diff).
//! - Every document the binary prints is validated against
//!   `docs/detect-host.schema.json`.
//! - Hostile trees: absolute and looping symlinks, FIFOs, oversized files,
//!   sockets, a missing host root.

mod corpus;
mod host_roots;
mod hostile;

use std::path::Path;
use std::sync::OnceLock;

use detect_host::HostFacts;
use nodeguard_common::HostRoot;
use serde_json::Value;

use crate::harness;

fn schema_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = harness::workspace_root().join("docs/detect-host.schema.json");
        let text = std::fs::read_to_string(&path).expect("reading the schema");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema is a valid JSON Schema")
    })
}

/// Panics with every violation when `doc` does not match the schema.
pub(crate) fn assert_valid(doc: &Value) {
    let errors: Vec<String> = schema_validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report violates docs/detect-host.schema.json:\n{}\n--- report\n{doc:#}",
        errors.join("\n")
    );
}

/// Runs the binary on a host root and returns the validated report.
pub(crate) fn run_on(root: &Path) -> Value {
    let result = harness::run(harness::tool("detect-host").arg("--host-root").arg(root));
    result.assert_code(0);
    let doc = result.json();
    assert_valid(&doc);
    doc
}

/// The parts of a report that depend only on the host root: everything but
/// the envelope, the running kernel (`arch`, `kernel`) and the root's path.
pub(crate) fn host_part(doc: &Value) -> Value {
    let mut body = doc.as_object().expect("object").clone();
    for key in [
        "schema_version",
        "tool",
        "version",
        "run_id",
        "node",
        "started_at",
        "finished_at",
        "duration_ms",
        "host_root",
        "arch",
        "kernel",
    ] {
        body.remove(key);
    }
    Value::Object(body)
}

pub(crate) fn detect_lib(root: &Path) -> HostFacts {
    let host = HostRoot::open(root).expect("opening the host root");
    detect_host::detect(&host).expect("detect")
}

/// The schema check must be able to fail: break the contract one key at a
/// time and expect a rejection.
#[test]
fn schema_rejects_reports_that_break_the_contract() {
    let doc = run_on(&harness::fixtures("detect-host").join("debian-12/rootfs"));
    let breakages = [
        ("/os/family", serde_json::json!("ubuntu")),
        ("/package/manager", serde_json::json!("pacman")),
        ("/package/manager_path", Value::Null),
        ("/init", Value::Null),
        ("/os/id", serde_json::json!("")),
        ("/schema_version", serde_json::json!(2)),
        (
            "/runtime/sockets",
            serde_json::json!([{"runtime": "podman", "path": "/x"}]),
        ),
    ];
    for (pointer, bad) in breakages {
        let mut broken = doc.clone();
        *broken.pointer_mut(pointer).expect(pointer) = bad;
        assert!(
            !schema_validator().is_valid(&broken),
            "schema accepted a report with {pointer} broken"
        );
    }
    let mut missing = doc.clone();
    missing["os"].as_object_mut().unwrap().remove("version_id");
    assert!(
        !schema_validator().is_valid(&missing),
        "schema accepted a missing os.version_id"
    );
}
