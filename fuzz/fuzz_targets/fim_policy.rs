//! fim-check: a policy file (TOML) compiled, then asked about a few paths.
#![no_main]

use fim_check::policy::{Inherit, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut policy) = Policy::parse(text, "fuzz.toml") else {
        return;
    };
    for path in [
        &b"/"[..],
        b"/etc",
        b"/etc/passwd",
        b"/usr/bin/tool",
        b"/var/lib/x\xff",
    ] {
        let decision = policy.decide(path, true, Inherit(None));
        let _ = policy.decide(path, false, decision.inherit);
        let _ = policy.is_excluded(path);
        let _ = policy.is_rule_base(path);
    }
    let _ = policy.exclude_baseline("var/lib/nodeguard/fim/baseline");
});
