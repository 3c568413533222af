//! install-agent: an agent profile (TOML) parsed and validated, its
//! templates parsed and rendered with empty values.
#![no_main]

use install_agent::profile::Profile;
use install_agent::template::{self, Template, Values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = Profile::parse(text) {
        let _ = profile.unit();
    }
    let values = Values::new();
    if let Ok(parsed) = Template::parse(text) {
        let _ = parsed.keys().count();
        let _ = parsed.render(&values);
    }
    let _ = template::render_text(text, &values);
});
