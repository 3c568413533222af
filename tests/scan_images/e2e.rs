//! End-to-end test with real containerd and Trivy (below).
