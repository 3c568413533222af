//! scan-images: a Trivy JSON report and the summaries made from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scan_images::trivy_report;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = trivy_report::parse(data) else {
        return;
    };
    let counts = report.counts();
    let _ = counts.total();
    let _ = report.unique_ids();
    let _ = report.os();
});
