//! Black-box tests for `detect-host` (written with the tool).
