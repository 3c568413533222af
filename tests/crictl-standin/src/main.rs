//! A crictl-compatible stand-in: the subset of crictl that scan-images and
//! its end-to-end tests use, answered from a real CRI socket.
//!
//! Read side (what scan-images calls), printed with crictl's JSON shapes
//! (protojson: lowerCamelCase names, 64-bit integers as strings, enums as
//! names, empty maps and lists emitted):
//!   crictl -r EP version
//!   crictl -r EP ps [-a] -o json
//!   crictl -r EP images -o json
//!   crictl -r EP inspect [-o json] ID     ({status, info}; RFC3339 times)
//!   crictl -r EP inspecti ID
//! Write side (only for setting up test pods; argv differs from crictl,
//! which takes JSON config files):
//!   crictl -r EP runp NAME NAMESPACE UID            prints the sandbox id
//!   crictl -r EP create POD_ID POD_NAME NAMESPACE UID CONTAINER IMAGE [CMD...]
//!   crictl -r EP start|stop|rm ID
//!   crictl -r EP stopp|rmp ID
//!   crictl -r EP pods -q
//! Errors go to stderr and exit 1, like crictl.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde_json::{json, Map, Value};
use tonic::transport::{Channel, Endpoint, Uri};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Globals {
    endpoint: Option<String>,
    timeout: Duration,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (globals, rest) = match parse_globals(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("crictl: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crictl: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&globals, &rest)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time=\"now\" level=fatal msg=\"{e}\"");
            ExitCode::from(1)
        }
    }
}

fn parse_globals(args: &[String]) -> Result<(Globals, Vec<String>), String> {
    let mut globals = Globals {
        endpoint: std::env::var("CONTAINER_RUNTIME_ENDPOINT").ok(),
        timeout: Duration::from_secs(2),
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-r" | "--runtime-endpoint" | "-i" | "--image-endpoint" => {
                let v = args.get(i + 1).ok_or("missing endpoint value")?;
                if args[i].contains('r') {
                    globals.endpoint = Some(v.clone());
                }
                i += 2;
            }
            "-t" | "--timeout" => {
                let v = args.get(i + 1).ok_or("missing timeout value")?;
                let secs: u64 = v
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| format!("bad timeout {v:?}"))?;
                globals.timeout = Duration::from_secs(secs);
                i += 2;
            }
            _ => break,
        }
    }
    Ok((globals, args[i..].to_vec()))
}

async fn connect(globals: &Globals) -> Result<Channel, BoxError> {
    let endpoint = globals.endpoint.clone().unwrap_or_else(|| {
        eprintln!("level=warning msg=\"runtime connect using default endpoints\"");
        "unix:///run/containerd/containerd.sock".to_string()
    });
    let path = endpoint
        .strip_prefix("unix://")
        .unwrap_or(&endpoint)
        .to_string();
    let shown = endpoint.clone();
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_timeout(globals.timeout)
        .timeout(Duration::from_secs(30))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|e| {
            format!(
                "validate service connection: validate CRI v1 runtime API for endpoint \
                 \"{shown}\": connection error: {e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )
        })?;
    Ok(channel)
}

async fn dispatch(globals: &Globals, args: &[String]) -> Result<(), BoxError> {
    let Some(command) = args.first() else {
        return Err("no command given".into());
    };
    let flags: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let positional: Vec<&str> = positional(&flags);
    let channel = connect(globals).await?;
    let mut rt = RuntimeServiceClient::new(channel.clone());
    let mut img = ImageServiceClient::new(channel);
    match command.as_str() {
        "version" => {
            let v = rt
                .version(cri::VersionRequest {
                    version: "v1".into(),
                })
                .await?
                .into_inner();
            println!("Version:  0.1.0");
            println!("RuntimeName:  {}", v.runtime_name);
            println!("RuntimeVersion:  {}", v.runtime_version);
            println!("RuntimeApiVersion:  {}", v.runtime_api_version);
        }
        "ps" => {
            require_json(&flags)?;
            let all = flags.contains(&"-a") || flags.contains(&"--all");
            let filter = (!all).then(|| cri::ContainerFilter {
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            });
            let resp = rt
                .list_containers(cri::ListContainersRequest { filter })
                .await?
                .into_inner();
            let list: Vec<Value> = resp.containers.iter().map(container_json).collect();
            print_json(&json!({ "containers": list }))?;
        }
        "images" | "img" => {
            require_json(&flags)?;
            let resp = img
                .list_images(cri::ListImagesRequest { filter: None })
                .await?
                .into_inner();
            let list: Vec<Value> = resp.images.iter().map(image_json).collect();
            print_json(&json!({ "images": list }))?;
        }
        "inspect" => {
            let id = one(&positional, "container ID")?;
            let resp = rt
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: !flags.contains(&"-q"),
                })
                .await?
                .into_inner();
            let status = resp.status.as_ref().map(container_status_json);
            print_json(&verbose_wrap(status, &resp.info))?;
        }
        "inspecti" => {
            let id = one(&positional, "image ID")?;
            let resp = img
                .image_status(cri::ImageStatusRequest {
                    image: Some(cri::ImageSpec {
                        image: id.into(),
                        ..Default::default()
                    }),
                    verbose: true,
                })
                .await?
                .into_inner();
            let status = resp.image.as_ref().map(image_json);
            print_json(&verbose_wrap(status, &resp.info))?;
        }
        "pods" => {
            let resp = rt
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await?
                .into_inner();
            for pod in resp.items {
                println!("{}", pod.id);
            }
        }
        "runp" => {
            let [name, namespace, uid] = positional[..] else {
                return Err("usage: runp NAME NAMESPACE UID".into());
            };
            let resp = rt
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(sandbox_config(name, namespace, uid)),
                    runtime_handler: String::new(),
                })
                .await?
                .into_inner();
            println!("{}", resp.pod_sandbox_id);
        }
        "create" => create(&mut rt, &mut img, &positional).await?,
        "start" => {
            let id = one(&positional, "container ID")?;
            rt.start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await?;
            println!("{id}");
        }
        "stop" => {
            let id = one(&positional, "container ID")?;
            rt.stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout: 0,
            })
            .await?;
            println!("{id}");
        }
        "rm" => {
            let id = one(&positional, "container ID")?;
            rt.remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await?;
            println!("{id}");
        }
        "stopp" => {
            let id = one(&positional, "pod ID")?;
            rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await?;
            println!("Stopped sandbox {id}");
        }
        "rmp" => {
            let id = one(&positional, "pod ID")?;
            rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await?;
            println!("Removed sandbox {id}");
        }
        other => {
            return Err(format!("command {other:?} is not implemented by the stand-in").into())
        }
    }
    Ok(())
}

/// Creates a container the way kubelet does: the image is resolved to its
/// ID first and the ID is what CreateContainer receives, so `ps` shows
/// `image.image = sha256:…` as on a real node.
async fn create(
    rt: &mut RuntimeServiceClient<Channel>,
    img: &mut ImageServiceClient<Channel>,
    positional: &[&str],
) -> Result<(), BoxError> {
    let [pod_id, pod, namespace, uid, name, image, cmd @ ..] = positional else {
        return Err("usage: create POD_ID POD_NAME NAMESPACE UID CONTAINER IMAGE [CMD...]".into());
    };
    let status = img
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await?
        .into_inner();
    let image_id = status
        .image
        .map(|i| i.id)
        .ok_or_else(|| format!("image {image:?} is not present"))?;
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), pod.to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            namespace.to_string(),
        ),
        ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
        ("io.kubernetes.container.name".to_string(), name.to_string()),
    ]);
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image_id,
            user_specified_image: image.to_string(),
            ..Default::default()
        }),
        command: cmd.iter().map(ToString::to_string).collect(),
        labels,
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(host_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config(pod, namespace, uid)),
        })
        .await?
        .into_inner();
    println!("{}", resp.container_id);
    Ok(())
}

/// Host network so no CNI is needed; hostname left empty because runc cannot
/// set one without a private UTS namespace.
fn sandbox_config(name: &str, namespace: &str, uid: &str) -> cri::PodSandboxConfig {
    let log_dir = std::env::var("CRICTL_STANDIN_LOG_DIR").unwrap_or_else(|_| "/tmp".into());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: namespace.into(),
            attempt: 0,
        }),
        log_directory: format!("{log_dir}/{namespace}_{name}_{uid}"),
        labels: HashMap::from([
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                namespace.to_string(),
            ),
            ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
        ]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(host_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn host_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn positional<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for f in flags {
        if skip {
            skip = false;
        } else if *f == "-o" || *f == "--output" {
            skip = true;
        } else if !f.starts_with('-') {
            out.push(*f);
        }
    }
    out
}

fn one<'a>(positional: &[&'a str], what: &str) -> Result<&'a str, BoxError> {
    match positional {
        [one] => Ok(one),
        _ => Err(format!("exactly one {what} expected by the stand-in").into()),
    }
}

fn require_json(flags: &[&str]) -> Result<(), BoxError> {
    let json = flags
        .windows(2)
        .any(|w| (w[0] == "-o" || w[0] == "--output") && w[1] == "json");
    if json {
        Ok(())
    } else {
        Err("the stand-in only prints -o json".into())
    }
}

fn print_json(value: &Value) -> Result<(), BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// crictl's verbose wrapper: `status` plus one key per `info` entry, each
/// parsed as JSON when it looks like an object.
fn verbose_wrap(status: Option<Value>, info: &HashMap<String, String>) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), status.unwrap_or(Value::Null));
    for (k, v) in info {
        let parsed = if v.starts_with('{') {
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
        } else {
            Value::String(v.clone())
        };
        out.insert(k.clone(), parsed);
    }
    Value::Object(out)
}

fn map_json(m: &HashMap<String, String>) -> Value {
    let mut keys: Vec<_> = m.keys().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| (k.clone(), Value::String(m[k].clone())))
            .collect(),
    )
}

fn image_spec_json(spec: &cri::ImageSpec) -> Value {
    json!({
        "image": spec.image,
        "annotations": map_json(&spec.annotations),
        "userSpecifiedImage": spec.user_specified_image,
        "runtimeHandler": spec.runtime_handler,
    })
}

fn state_name(state: i32) -> &'static str {
    match cri::ContainerState::try_from(state) {
        Ok(cri::ContainerState::ContainerCreated) => "CONTAINER_CREATED",
        Ok(cri::ContainerState::ContainerRunning) => "CONTAINER_RUNNING",
        Ok(cri::ContainerState::ContainerExited) => "CONTAINER_EXITED",
        _ => "CONTAINER_UNKNOWN",
    }
}

fn container_json(c: &cri::Container) -> Value {
    let mut v = json!({
        "id": c.id,
        "podSandboxId": c.pod_sandbox_id,
        "imageRef": c.image_ref,
        "state": state_name(c.state),
        "createdAt": c.created_at.to_string(),
        "labels": map_json(&c.labels),
        "annotations": map_json(&c.annotations),
        "imageId": c.image_id,
    });
    if let Some(m) = &c.metadata {
        v["metadata"] = json!({ "name": m.name, "attempt": m.attempt });
    }
    if let Some(i) = &c.image {
        v["image"] = image_spec_json(i);
    }
    v
}

fn container_status_json(s: &cri::ContainerStatus) -> Value {
    let mut v = json!({
        "id": s.id,
        "state": state_name(s.state),
        "createdAt": rfc3339(s.created_at),
        "startedAt": rfc3339(s.started_at),
        "finishedAt": rfc3339(s.finished_at),
        "exitCode": s.exit_code,
        "imageRef": s.image_ref,
        "reason": s.reason,
        "message": s.message,
        "labels": map_json(&s.labels),
        "annotations": map_json(&s.annotations),
        "mounts": [],
        "logPath": s.log_path,
        "imageId": s.image_id,
    });
    if let Some(m) = &s.metadata {
        v["metadata"] = json!({ "name": m.name, "attempt": m.attempt });
    }
    if let Some(i) = &s.image {
        v["image"] = image_spec_json(i);
    }
    v
}

fn image_json(i: &cri::Image) -> Value {
    let mut v = json!({
        "id": i.id,
        "repoTags": i.repo_tags,
        "repoDigests": i.repo_digests,
        "size": i.size.to_string(),
        "username": i.username,
        "pinned": i.pinned,
    });
    if let Some(uid) = &i.uid {
        v["uid"] = json!({ "value": uid.value.to_string() });
    }
    if let Some(spec) = &i.spec {
        v["spec"] = image_spec_json(spec);
    }
    v
}

/// Nanoseconds since the epoch as RFC3339 in UTC, trailing zeros of the
/// fraction trimmed (Go's RFC3339Nano).
fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        out.push_str(format!(".{frac:09}").trim_end_matches('0'));
    }
    out.push('Z');
    out
}
