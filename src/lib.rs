//! wsus-edge: a branch office's Windows update server.
//!
//! The crate is split by concern; data flows top to bottom:
//!
//! | module | owns |
//! |---|---|
//! | [`config`], [`units`] | the TOML config, env overrides, human units |
//! | [`model`] | domain types shared by every layer (updates, files, groups, approvals) |
//! | [`wire`] | MS-WSUSSS and MS-WUSP types, the SOAP codec, update XML; no I/O |
//! | [`store`] | the metadata store (sled); the only module that names sled |
//! | [`content`] | the verified streaming payload cache under `/Content/` |
//! | [`client_service`] | MS-WUSP SimpleAuth, client web service and reporting, from the store |
//! | [`http`] | the client-facing listeners and request routing |
//! | [`logging`] | log output (text/JSON, journald priorities) and error cause chains |
//! | [`metrics`] | the process-wide metrics registry (Prometheus text) |
//! | [`server`] | the running server `serve` builds: state, router, shutdown |
//! | [`sync`] | replica sync (downstream MS-WSUSSS) and its control handle |
//! | [`transfer`] | export/import of signed update packages for disconnected networks |
//! | [`simulate`] | the deterministic catalog generator behind `simulate-upstream` |
//! | [`cli`] | the command line (anyhow lives here and in `main.rs` only) |

pub mod admin;
pub mod app;
pub mod cli;
pub mod client_service;
pub mod config;
pub mod content;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod rollup;
pub mod server_sync;
pub mod simulate;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod units;
pub mod wire;
