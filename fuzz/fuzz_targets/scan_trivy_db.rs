//! scan-images: Trivy's DB `metadata.json` and the update rule applied to it.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use scan_images::trivy_db::{self, DbMetadata};

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = DbMetadata::parse(data) else {
        return;
    };
    let _ = meta.updated_at_time();
    for now in [
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ] {
        let _ = trivy_db::db_needs_update(Some(&meta), 2, now);
    }
});
