//! scan-images: crictl's JSON (`ps`, `images`, `inspecti`) and `version`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scan_images::crictl;

fuzz_target!(|data: &[u8]| {
    let _ = crictl::parse_ps(data);
    let _ = crictl::parse_images(data);
    let _ = crictl::parse_inspect(data);
    let _ = crictl::parse_version(&String::from_utf8_lossy(data));
});
