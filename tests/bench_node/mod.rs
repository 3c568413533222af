//! Black-box tests for `bench-node`: fixture nodes (host roots with a fake
//! `/proc`) built by the tests, judged by the real binary.

mod control_plane;
mod fixture;
mod kube_bench_bugs;
mod layouts;
mod output;
mod proxy_via_host;
mod real_proc;
mod robustness;
mod text;
mod worker;
