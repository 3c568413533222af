//! bench-node: a process command line (`/proc/<pid>/cmdline`, NUL
//! separated) classified and its flags read as every setting type; the
//! same bytes as a systemd `ExecStart=` line and as flag values.
#![no_main]

use bench_node::cmdline::{self, Flags};
use bench_node::procs;
use bench_node::value::{self, ValueType};
use libfuzzer_sys::fuzz_target;

const TYPES: [ValueType; 6] = [
    ValueType::Bool,
    ValueType::Int,
    ValueType::Duration,
    ValueType::String,
    ValueType::List,
    ValueType::Map,
];

fn read_flags(argv: &[String]) {
    let start = procs::classify(argv).map_or(0, |(_, index)| index);
    let flags = Flags::parse(argv.get(start..).unwrap_or_default());
    let names: Vec<String> = flags.names().take(64).map(str::to_owned).collect();
    for name in &names {
        for ty in TYPES {
            if let Some(Ok(parsed)) = flags.typed(name, ty) {
                let _ = parsed.to_string();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    read_flags(&cmdline::split_cmdline(data));
    let text = String::from_utf8_lossy(data);
    read_flags(&cmdline::shell_words(&text));
    if let Ok(duration) = value::parse_go_duration(&text) {
        let _ = value::format_go_duration(duration);
    }
    for ty in TYPES {
        let _ = ty.parse_flag(&text);
    }
});
