//! Black-box tests for `fim-check` (written with the tool).
