//! The metrics lane: every node's `nodeguard_*` series from the Prometheus
//! HTTP API into a [`Cluster`].
//!
//! One instant query fetches every series at once (`{__name__=~"nodeguard_.+"}`),
//! a second asks kube-state-metrics' `kube_node_info` which nodes exist, so
//! a node that sends nothing shows up as missing. Any Prometheus-compatible
//! API works the same way (Thanos Query, Mimir, VictoriaMetrics), which is
//! how the report scales past one Prometheus.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::model::{AgentSeen, CheckSeen, Cluster, ImageSeen, Interner, Run, Tool, ToolData};

/// The query for every nodeguard series.
pub const SERIES_QUERY: &str = r#"{__name__=~"nodeguard_.+"}"#;
/// The query for the nodes that exist.
pub const NODES_QUERY: &str = "kube_node_info";

/// Largest API answer read (5,000 nodes × ~100 series is ~100 MB).
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://prometheus-operated.monitoring:9090`.
    pub url: String,
    /// Bearer token (already read from its file).
    pub bearer_token: Option<String>,
    /// Extra CA certificates (PEM) to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The label that names the node on nodeguard series.
    pub node_label: String,
}

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Sample>,
}

/// One instant-vector sample.
#[derive(Debug, Deserialize)]
pub struct Sample {
    pub metric: BTreeMap<String, String>,
    /// `[unix_seconds, "value"]`.
    pub value: (f64, String),
}

impl Sample {
    fn number(&self) -> Option<f64> {
        match self.value.1.as_str() {
            "NaN" => None,
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            text => text.parse().ok(),
        }
    }

    fn label(&self, name: &str) -> &str {
        self.metric.get(name).map_or("", String::as_str)
    }
}

/// Reads the cluster from the API; runs dated after `horizon` are
/// future-dated (see [`Cluster::add`]).
pub fn read(endpoint: &Endpoint, horizon: Option<f64>) -> Result<Cluster> {
    let agent = agent(endpoint)?;
    let series = query(&agent, endpoint, SERIES_QUERY)?;
    let nodes = match query(&agent, endpoint, NODES_QUERY) {
        Ok(nodes) => nodes,
        Err(err) => {
            log::warn!(
                "cannot list nodes with {NODES_QUERY} (missing nodes will not be shown): {err:#}"
            );
            Vec::new()
        }
    };
    let mut cluster = from_samples(&series, &endpoint.node_label, horizon);
    if nodes.is_empty() {
        cluster.warn(format!(
            "{NODES_QUERY} returned nothing (is kube-state-metrics scraped?): nodes that send no metrics at all cannot be listed as missing"
        ));
    }
    for sample in &nodes {
        let node = sample.label("node");
        if !node.is_empty() {
            cluster.expected_nodes.insert(node.to_owned());
        }
    }
    Ok(cluster)
}

fn agent(endpoint: &Endpoint) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(endpoint.timeout))
        .http_status_as_error(false)
        .user_agent(concat!(
            "nodeguard-cluster-report/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some(ca_file) = &endpoint.ca_file {
        let pem =
            crate::input::open::read_capped(ca_file, crate::input::open::MAX_CA_BYTES, "CA file")?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            })
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot parse CA file {}", ca_file.display()))?;
        if certs.is_empty() {
            bail!("no certificate in CA file {}", ca_file.display());
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

/// Runs one instant query; errors name the URL and Prometheus' own message.
fn query(agent: &ureq::Agent, endpoint: &Endpoint, promql: &str) -> Result<Vec<Sample>> {
    let url = format!("{}/api/v1/query", endpoint.url.trim_end_matches('/'));
    let mut request = agent.get(&url).query("query", promql);
    if let Some(token) = &endpoint.bearer_token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request
        .call()
        .with_context(|| format!("cannot query {url} ({promql})"))?;
    let status = response.status();
    let reader = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .reader();
    parse_response(reader, status.as_u16()).with_context(|| format!("query {promql} at {url}"))
}

/// Parses an API answer; `http_status` only names the failure.
pub fn parse_response(reader: impl Read, http_status: u16) -> Result<Vec<Sample>> {
    let response: ApiResponse = match serde_json::from_reader(reader) {
        Ok(response) => response,
        Err(err) => bail!("HTTP {http_status}, not a Prometheus API answer: {err}"),
    };
    if response.status != "success" {
        bail!(
            "HTTP {http_status}: {}: {}",
            response.error_type.as_deref().unwrap_or("error"),
            response.error.as_deref().unwrap_or("no message")
        );
    }
    let data = response.data.context("answer without data")?;
    if data.result_type != "vector" {
        bail!("expected an instant vector, got {}", data.result_type);
    }
    Ok(data.result)
}

/// Turns samples into per-node, per-tool runs.
pub fn from_samples(samples: &[Sample], node_label: &str, horizon: Option<f64>) -> Cluster {
    let mut cluster = Cluster::with_horizon(horizon);
    let mut runs: BTreeMap<(String, Tool), Run> = BTreeMap::new();
    for sample in samples {
        cluster.stats.lines += 1;
        let name = sample.label("__name__");
        let node = match sample.label(node_label) {
            "" => sample.label("instance"),
            node => node,
        };
        let Some(value) = sample.number() else {
            cluster.stats.malformed_lines += 1;
            continue;
        };
        let Some((tool, metric)) = split_name(name, sample) else {
            cluster.stats.unsupported_records += 1;
            continue;
        };
        if node.is_empty() {
            cluster.stats.malformed_lines += 1;
            cluster.warn(format!("{name}: no {node_label} or instance label"));
            continue;
        }
        let run = runs
            .entry((node.to_owned(), tool))
            .or_insert_with(|| Run::new(tool, "", "", sample.value.0));
        run.records += 1;
        apply(run, metric, sample, value, &mut cluster.strings);
    }
    for ((node, tool), mut run) in runs {
        // `records` started at 1 for the run itself: count series only.
        run.records = run.records.saturating_sub(1);
        cluster.add(&node, tool, run);
    }
    cluster
}

/// `nodeguard_<tool>_<metric>` → (tool, metric); `nodeguard_build_info`
/// names its tool in a label.
fn split_name<'a>(name: &'a str, sample: &'a Sample) -> Option<(Tool, &'a str)> {
    let rest = name.strip_prefix("nodeguard_")?;
    if rest == "build_info" {
        return Some((Tool::from_name(sample.label("tool"))?, "build_info"));
    }
    Tool::ALL.into_iter().find_map(|tool| {
        let metric = rest.strip_prefix(tool.snake())?.strip_prefix('_')?;
        Some((tool, metric))
    })
}

fn apply(run: &mut Run, metric: &str, sample: &Sample, value: f64, strings: &mut Interner) {
    match metric {
        "build_info" => run.version = sample.label("version").to_owned(),
        "last_run_timestamp_seconds" => run.finished = value,
        "last_success_timestamp_seconds" => run.last_success = Some(value),
        _ => {}
    }
    let count = count_from(value);
    match (&mut run.data, metric) {
        (ToolData::Scan(scan), "vulnerabilities") => {
            let digest = sample.label("image_digest");
            let repository = sample.label("image_repository");
            let tag = sample.label("image_tag");
            let key = if digest.is_empty() {
                strings.text(&format!("{repository}:{tag}"))
            } else {
                strings.text(digest)
            };
            let image = scan.images.entry(key).or_insert_with(|| ImageSeen {
                repository: strings.text(repository),
                tag: strings.text(tag),
                digest: strings.text(digest),
                ..ImageSeen::default()
            });
            image.vulnerabilities.add(sample.label("severity"), count);
        }
        (ToolData::Scan(scan), "host_vulnerabilities") => {
            scan.host
                .get_or_insert_with(Default::default)
                .add(sample.label("severity"), count);
        }
        (ToolData::Scan(scan), "scan_failures") => scan.failures = Some(count),
        (ToolData::Scan(scan), "db_age_seconds") => scan.db_age_seconds = Some(value),
        (ToolData::Bench(bench), "checks") => {
            bench
                .counts
                .insert(sample.label("status").to_ascii_uppercase(), count);
        }
        (ToolData::Bench(bench), "check_failed") if count > 0 => {
            bench.checks.insert(
                strings.text(sample.label("id")),
                CheckSeen {
                    title: strings.text(""),
                    status: strings.text("FAIL"),
                    scored: Some(true),
                },
            );
        }
        (ToolData::Fim(fim), "changes") => {
            fim.counts.insert(sample.label("kind").to_owned(), count);
        }
        (ToolData::Fim(fim), "errors") => fim.errors = Some(count),
        (ToolData::Fim(fim), "baseline_authenticated") => {
            fim.baseline_authenticated = Some(count > 0);
        }
        (ToolData::Agent(agents), "converged" | "service_active" | "info") => {
            let seen: &mut AgentSeen = agents
                .agents
                .entry(sample.label("agent").to_owned())
                .or_default();
            match metric {
                "converged" => seen.converged = Some(count > 0),
                "service_active" => seen.service_active = Some(count > 0),
                _ => seen.version = Some(sample.label("version").to_owned()),
            }
        }
        _ => {}
    }
}

/// A sample value as a count: rounded, clamped to `0..=u64::MAX` (a count
/// too large to hold saturates, it never wraps), NaN and negatives 0.
fn count_from(value: f64) -> u64 {
    // 2^64 as f64: anything at or above it does not fit.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let value = value.round();
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= LIMIT {
        u64::MAX
    } else {
        // In range, integral and non-negative: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = value as u64;
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(results: &str) -> String {
        format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{results}]}}}}"#)
    }

    fn series(name: &str, labels: &str, value: &str) -> String {
        format!(
            r#"{{"metric":{{"__name__":"{name}","node":"n1"{labels}}},"value":[1795482000.5,"{value}"]}}"#
        )
    }

    #[test]
    fn errors_carry_prometheus_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        let err = parse_response(body.as_bytes(), 400).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "HTTP 400: bad_data: parse error at char 3"
        );
        let err = parse_response(&b"<html>"[..], 502).unwrap_err();
        assert!(format!("{err}").starts_with("HTTP 502, not a Prometheus API answer"));
    }

    #[test]
    fn series_become_runs() {
        let results = [
            series("nodeguard_build_info", r#","tool":"scan-images","version":"0.1.0""#, "1"),
            series("nodeguard_scan_images_last_run_timestamp_seconds", "", "1795480000"),
            series("nodeguard_scan_images_last_success_timestamp_seconds", "", "1795470000"),
            series(
                "nodeguard_scan_images_vulnerabilities",
                r#","severity":"CRITICAL","image_repository":"nginx","image_tag":"1","image_digest":"sha256:aa""#,
                "3",
            ),
            series("nodeguard_bench_node_check_failed", r#","id":"4.2.1""#, "1"),
            series("nodeguard_fim_check_changes", r#","kind":"added""#, "2"),
            series("nodeguard_install_agent_converged", r#","agent":"qualys""#, "0"),
            series("nodeguard_other_thing", "", "1"),
            series("nodeguard_fim_check_errors", "", "NaN"),
        ]
        .join(",");
        let samples = parse_response(response(&results).as_bytes(), 200).expect("parse");
        let cluster = from_samples(&samples, "node", None);
        let runs = &cluster.nodes["n1"].tools;
        let scan = &runs[&Tool::ScanImages];
        assert_eq!(scan.version, "0.1.0");
        assert_eq!(scan.finished, 1_795_480_000.0);
        assert_eq!(scan.success_time(), 1_795_470_000.0);
        let ToolData::Scan(data) = &scan.data else {
            unreachable!()
        };
        assert_eq!(data.images["sha256:aa"].vulnerabilities.critical(), 3);
        let ToolData::Agent(agents) = &runs[&Tool::InstallAgent].data else {
            unreachable!()
        };
        assert_eq!(agents.agents["qualys"].converged, Some(false));
        assert_eq!(cluster.stats.unsupported_records, 1);
        assert_eq!(cluster.stats.malformed_lines, 1);
        assert_eq!(cluster.stats.records, 7);
    }

    /// Regression: huge, negative and non-finite sample values become
    /// saturated counts, and per-node sums of them never wrap.
    #[test]
    fn huge_counts_saturate() {
        assert_eq!(count_from(1e30), u64::MAX);
        assert_eq!(count_from(f64::INFINITY), u64::MAX);
        assert_eq!(count_from(-5.0), 0);
        assert_eq!(count_from(f64::NAN), 0);
        assert_eq!(count_from(2.6), 3);
        let results = [
            series(
                "nodeguard_scan_images_vulnerabilities",
                r#","severity":"CRITICAL","image_digest":"sha256:aa""#,
                "1e19",
            ),
            series(
                "nodeguard_scan_images_vulnerabilities",
                r#","severity":"critical","image_digest":"sha256:aa""#,
                "1e19",
            ),
        ]
        .join(",");
        let samples = parse_response(response(&results).as_bytes(), 200).expect("parse");
        let cluster = from_samples(&samples, "node", None);
        let ToolData::Scan(data) = &cluster.nodes["n1"].tools[&Tool::ScanImages].data else {
            unreachable!()
        };
        assert_eq!(
            data.images["sha256:aa"].vulnerabilities.critical(),
            u64::MAX
        );
    }

    /// A node whose `last_run_timestamp_seconds` is beyond the horizon is
    /// future-dated in the metrics lane too.
    #[test]
    fn future_last_run_is_kept_apart() {
        let results = [
            series(
                "nodeguard_fim_check_last_run_timestamp_seconds",
                "",
                "4070908800",
            ),
            series("nodeguard_fim_check_changes", r#","kind":"added""#, "2"),
        ]
        .join(",");
        let samples = parse_response(response(&results).as_bytes(), 200).expect("parse");
        let cluster = from_samples(&samples, "node", Some(1_795_482_300.0));
        let runs = &cluster.nodes["n1"];
        assert!(runs.tools.is_empty());
        assert_eq!(runs.future[&Tool::FimCheck].finished, 4_070_908_800.0);
        assert_eq!(cluster.stats.future_records, 2);
    }

    /// A one-shot HTTP server on loopback: answers `body` to the first
    /// request and hands back the request it received.
    fn one_shot_server(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                request.push_str(&line);
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            request
        });
        (url, handle)
    }

    #[test]
    fn queries_carry_the_bearer_token_and_encode_promql() {
        let (url, server) =
            one_shot_server(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        let endpoint = Endpoint {
            url: format!("{url}/"),
            bearer_token: Some("s3cr3t-token".into()),
            ca_file: None,
            timeout: Duration::from_secs(10),
            node_label: "node".into(),
        };
        let samples =
            query(&agent(&endpoint).expect("agent"), &endpoint, SERIES_QUERY).expect("query");
        assert!(samples.is_empty());
        let request = server.join().expect("server");
        assert!(
            request.starts_with("GET /api/v1/query?query=%7B__name__%3D~%22nodeguard_.%2B%22%7D "),
            "{request}"
        );
        assert!(
            request.contains("\r\nauthorization: Bearer s3cr3t-token\r\n")
                || request.contains("\r\nAuthorization: Bearer s3cr3t-token\r\n"),
            "{request}"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("cr-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("empty.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let endpoint = Endpoint {
            url: "https://127.0.0.1:1".into(),
            bearer_token: None,
            ca_file: Some(ca.clone()),
            timeout: Duration::from_secs(1),
            node_label: "node".into(),
        };
        let err = agent(&endpoint).unwrap_err();
        assert!(
            format!("{err:#}").contains(&ca.display().to_string()),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
