//! Black-box tests for `scan-images` (written with the tool).
