//! Black-box tests for `bench-node` (written with the tool).
