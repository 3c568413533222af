//! cluster-report: JSON Lines input (plain, `kubectl logs --prefix
//! --timestamps`, CRI log lines) read, built into the view, rendered.
#![no_main]

use cluster_report::input::Chunk;
use cluster_report::model::Cluster;
use cluster_report::{html, jsonl, view};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk {
        source: 0,
        first_line: 1,
        data: data.to_vec(),
        last: true,
    };
    let options = view::ViewOptions {
        now: 1_765_000_000.0,
        stale_after: 7200.0,
        top_images: 5,
        clock_skew_tolerance: 300.0,
    };
    let mut cluster = Cluster::with_horizon(Some(options.horizon()));
    jsonl::read_chunk_into(&mut cluster, &chunk, "fuzz.jsonl");
    // Two workers' clusters merge as in `read_sources`.
    let cluster = cluster.merge(jsonl::read_chunk(&chunk, "fuzz.jsonl"));
    if cluster.nodes.is_empty() {
        return;
    }
    let built = view::build(cluster, "jsonl", vec!["fuzz.jsonl".to_owned()], &options);
    // Counts saturate, never wrap (issue 15): the cluster total covers
    // every node's, so `--fail-on critical` sees any node's criticals.
    for node in &built.nodes {
        assert!(
            built.summary.vulnerabilities.critical() >= node.vulnerabilities.critical(),
            "cluster critical total {} below node {}'s {}",
            built.summary.vulnerabilities.critical(),
            node.node,
            node.vulnerabilities.critical()
        );
    }
    let _ = html::render(&built, &html::time_text(options.now));
    let _ = serde_json::to_vec(&built);
});
