//! fim-check: a baseline stream decoded entry by entry, without a key and
//! with one (the first byte chooses), as `check` reads a stored baseline.
#![no_main]

use fim_check::baseline::Reader;
use libfuzzer_sys::fuzz_target;

/// The key the seeds are written with (see `fuzz/src/bin/seeds.rs`).
const KEY: &[u8] = b"nodeguard-fuzz-key";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let key = (selector & 1 == 1).then_some(KEY);
    let Ok(mut reader) = Reader::open(stream, key) else {
        return;
    };
    let _ = reader.header();
    // Every entry takes at least one byte, so this ends.
    while let Ok(Some(_entry)) = reader.next_entry() {}
    let _ = reader.count();
});
