//! cluster-report: a Prometheus HTTP API answer turned into runs, built
//! into the view, rendered.
#![no_main]

use cluster_report::{html, prometheus, view};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(samples) = prometheus::parse_response(data, 200) else {
        return;
    };
    let options = view::ViewOptions {
        now: 1_765_000_000.0,
        stale_after: 7200.0,
        top_images: 5,
        clock_skew_tolerance: 300.0,
    };
    let cluster = prometheus::from_samples(&samples, "node", Some(options.horizon()));
    if cluster.nodes.is_empty() {
        return;
    }
    let built = view::build(cluster, "prometheus", vec!["fuzz".to_owned()], &options);
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
