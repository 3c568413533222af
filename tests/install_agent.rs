//! Black-box tests for `install-agent` (written with the tool).
