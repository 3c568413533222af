//! Black-box tests for `cluster-report` (written with the tool).
