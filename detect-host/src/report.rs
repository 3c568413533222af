//! The report `detect-host` prints: the contract other tools and scripts
//! read. Keys are always present (`null` when unknown) so consumers never
//! have to tell "absent" from "unknown". `docs/detect-host.schema.json`
//! describes the same shape and the black-box tests validate against it.

use nodeguard_common::report::Report;
use serde::{Deserialize, Serialize};

use crate::arch::{ArchFacts, KernelFacts};
use crate::init::InitSystem;
use crate::os::OsFacts;
use crate::package::PackageFacts;
use crate::runtime::RuntimeFacts;

/// Everything `detect-host` knows about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The host root that was read, as given (`/`, `/host`).
    pub host_root: String,
    /// OS identity and classification.
    pub os: OsFacts,
    /// Package format and manager.
    pub package: PackageFacts,
    /// CPU architecture of the running kernel.
    pub arch: ArchFacts,
    /// The running kernel.
    pub kernel: KernelFacts,
    /// `systemd`, `openrc`, `other` or `unknown`.
    pub init: InitSystem,
    /// Host path (or `os.id`) that decided `init`; `null` when unknown.
    pub init_source: Option<String>,
    /// Container runtime sockets and kubelet presence.
    pub runtime: RuntimeFacts,
    /// Everything odd that did not stop detection: empty or unparsable
    /// release files, an unrecognised OS, a missing package manager.
    pub warnings: Vec<String>,
}

impl Report for HostFacts {
    const SCHEMA_VERSION: u32 = 1;

    fn text(
        &self,
        ctx: &nodeguard_common::report::RunContext,
        painter: &nodeguard_common::text::Painter,
    ) -> String {
        crate::text::render(self, ctx, painter)
    }
}
