//! bench-node: a YAML or JSON config file (kubelet config, kube-proxy
//! config, drop-ins, kubeconfigs) parsed, then every key read back as
//! every setting type, as the checks do.
#![no_main]

use bench_node::config::{self, Layer, Layers};
use bench_node::value::ValueType;
use libfuzzer_sys::fuzz_target;

const TYPES: [ValueType; 6] = [
    ValueType::Bool,
    ValueType::Int,
    ValueType::Duration,
    ValueType::String,
    ValueType::List,
    ValueType::Map,
];

const KEYS: [&str; 8] = [
    "authentication.anonymous.enabled",
    "authentication.x509.clientCAFile",
    "authorization.mode",
    "readOnlyPort",
    "streamingConnectionIdleTimeout",
    "featureGates",
    "tlsCipherSuites",
    "clientConnection.kubeconfig",
];

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = config::parse_document(data) else {
        return;
    };
    let mut keys: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
    if let Some(map) = doc.as_object() {
        for (key, value) in map.iter().take(64) {
            keys.push(key.clone());
            if let Some(inner) = value.as_object() {
                keys.extend(inner.keys().take(16).map(|k| format!("{key}.{k}")));
            }
        }
    }
    let layers = Layers {
        layers: vec![Layer {
            path: "/var/lib/kubelet/config.yaml".to_owned(),
            doc,
        }],
    };
    for key in &keys {
        if let Some((value, _path)) = layers.lookup(key) {
            for ty in TYPES {
                if let Ok(parsed) = ty.from_json(value) {
                    let _ = parsed.to_string();
                }
            }
        }
    }
});
