//! install-agent: what it reads back from the host's tools (`dpkg-query`
//! status lines, `systemctl show` output).
#![no_main]

use install_agent::observe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = observe::parse_systemctl_show(&text);
    for line in text.lines().take(64) {
        let _ = observe::parse_dpkg_status_line(line);
    }
});
