//! detect-host: an os-release file (`/etc/os-release`, `/usr/lib/os-release`)
//! through parsing and classification.
#![no_main]

use detect_host::{os, os_release};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let release = os_release::parse(data);
    let raw = os::identity_from_os_release(&release);
    let _ = os::classify_identity(&raw, false);
    let _ = os::classify_identity(&raw, true);
});
