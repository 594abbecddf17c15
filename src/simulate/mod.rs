//! A deterministic WSUS catalog generator: the data behind `simulate-upstream`.
