//! detect-host: the legacy release files (`redhat-release`, `SuSE-release`,
//! `lsb-release`, `alpine-release`, `debian_version`). The first byte picks
//! the format, the rest is the file.
#![no_main]

use detect_host::legacy::{self, LegacyFormat};
use detect_host::os;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let format = match selector % 5 {
        0 => LegacyFormat::ReleaseLine,
        1 => LegacyFormat::Suse,
        2 => LegacyFormat::Lsb,
        3 => LegacyFormat::Alpine,
        _ => LegacyFormat::DebianVersion,
    };
    if let Some(release) = legacy::parse(format, bytes) {
        let raw = os::identity_from_legacy(&release);
        let _ = os::classify_identity(&raw, false);
    }
    let _ = legacy::id_for_product(&String::from_utf8_lossy(bytes));
});
