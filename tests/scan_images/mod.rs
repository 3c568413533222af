//! Black-box tests for `scan-images`.
//!
//! `cycle` and `faults`: the real binary against small stand-in `crictl` and `trivy`
//! programs (`tests/fixtures/scan-images/bin/`) fed with real-format data:
//! the join, dedup and cache, and every failure the issue names.
//! `e2e`: real containerd (CRI on a private socket), a crictl-compatible
//! client on the real socket, real Trivy with a planted vulnerability DB.

mod cycle;
mod e2e;
mod faults;
pub(crate) mod node;
