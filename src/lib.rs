//! wsus-edge: a branch office's Windows update server.
//!
//! The crate is split by concern; every arrow points down this table (a module uses only
//! modules below it; the graph is in `docs/design.md`, section Map):
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line (anyhow lives here and in `main.rs` only) |
//! | [`app`] | the one place that wires the server: store, cache, services, listeners, sync runner, shutdown; the in-process runners (`RunningServer`, `SimUpstream`) |
//! | [`admin`] | the admin API on its own listener: token, JSON handlers behind the CLI verbs, `/metrics`, status page |
//! | [`sync`] | replica sync: pulls metadata, approvals and content from the upstream we replicate (MS-WSUSSS client side), its schedule and control handle |
//! | [`rollup`] | MS-WSUSSS reporting rollup: sending our computers' status upstream, accepting it from downstream servers |
//! | [`server_sync`] | the MS-WSUSSS server side offered to downstream servers (ServerSyncWebService, DssAuthWebService) |
//! | [`client_service`] | MS-WUSP SimpleAuth, client web service and reporting for Windows clients, from the store |
//! | [`transfer`] | export/import of signed update packages for disconnected networks |
//! | [`simulate`] | the deterministic catalog generator behind `simulate-upstream`, its store loader and payload source |
//! | [`http`] | the client-facing listeners, request routing, TLS, the self-update proxy |
//! | [`content`] | the verified streaming payload cache under `/Content/` |
//! | [`store`] | the metadata store (sled); the only module that names sled; the persisted subscription, the deployment log, the files of approved updates |
//! | [`wire`] | MS-WSUSSS and MS-WUSP types, the SOAP codec, update XML; no I/O |
//! | [`logging`] | log output (text/JSON, journald priorities) and error cause chains |
//! | [`metrics`] | the process-wide metrics registry (Prometheus text) |
//! | [`config`], [`units`] | the TOML config, env overrides, human units; the upstream's one HTTP client |
//! | [`model`] | domain types shared by every layer (updates, files, groups, approvals) |

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
