//! The SOAP client a downstream uses to talk to its upstream: one POST per operation over
//! the upstream's one HTTP client ([`UpstreamConfig::http_client`]: rustls, `upstream.ca_file`), SOAP 1.1 out, typed responses in.
//! Network failures, dropped connections and 502/503/504 are retried with exponential
//! backoff; a SOAP fault is returned as [`SyncError::Fault`] at once (except `ServerBusy`,
//! which is retried like a network error).

use std::time::Duration;

use crate::config::UpstreamConfig;
use crate::wire::soap::{decode, encode, soap_action_header, FaultReaction, Operation};
use crate::wire::{SoapBody, WireError};

use super::SyncError;

/// Decodes an answer envelope into `T` (a fault → [`WireError::Fault`]).
pub type Decoder<T> = fn(&[u8]) -> Result<T, WireError>;

/// Longest one SOAP exchange may take, answer read included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// Retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 6;

/// A SOAP client bound to one upstream base URL.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base: String,
    retries: u32,
    backoff: Duration,
    /// `upstream.max_answer_size`.
    max_answer: u64,
}

impl UpstreamClient {
    /// A client for `[upstream]` (`url` required).
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, SyncError> {
        let base = cfg
            .url
            .as_deref()
            .ok_or_else(|| SyncError::Config("upstream.url is not set".into()))?
            .trim_end_matches('/')
            .to_string();
        let http = cfg
            .http_client()
            .map_err(|e| SyncError::Config(e.to_string()))?;
        Ok(Self {
            http,
            base,
            retries: DEFAULT_RETRIES,
            backoff: Duration::from_millis(200),
            max_answer: cfg.max_answer_size,
        })
    }

    /// Changes the retry policy (tests use short backoffs).
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// The upstream base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Resolves a service path (absolute `/x.asmx`, relative `x.asmx`, or a full URL).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    fn delay(&self, failures: u32) -> Duration {
        let d = self.backoff * 2u32.saturating_pow(failures.saturating_sub(1));
        d.min(Duration::from_secs(10))
    }

    /// Calls `op` at `url`; retries transient failures.
    pub async fn call<O: Operation>(&self, url: &str, op: &O) -> Result<O::Response, SyncError> {
        self.call_with(url, op, decode::<O::Response>).await
    }

    /// Like [`UpstreamClient::call`], with the answer decoded by `decoder` (e.g. a streaming
    /// decoder for a big answer); it must turn a fault into [`WireError::Fault`] as
    /// [`decode`] does.
    pub async fn call_with<O: Operation>(
        &self,
        url: &str,
        op: &O,
        decoder: Decoder<O::Response>,
    ) -> Result<O::Response, SyncError> {
        let body = encode(op);
        let mut failures = 0u32;
        loop {
            match self.once::<O>(url, &body, decoder).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_transient() && failures < self.retries => {
                    failures += 1;
                    let wait = self.delay(failures);
                    tracing::warn!(op = O::NAME, error = %e, attempt = failures, ?wait, "upstream call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn once<O: Operation>(
        &self,
        url: &str,
        body: &str,
        decoder: Decoder<O::Response>,
    ) -> Result<O::Response, SyncError> {
        let resp = self
            .http
            .post(url)
            .timeout(EXCHANGE_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", soap_action_header(O::ACTION))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                let why = format!("{url}: {}", crate::logging::chain(&e));
                // A refused redirect will not change by itself: not retried.
                if e.is_redirect() {
                    SyncError::Protocol(why)
                } else {
                    SyncError::Network(why)
                }
            })?;
        let status = resp.status();
        let bytes = self.read_answer(url, resp).await?;
        if status.is_success() || status.as_u16() == 500 {
            match decoder(&bytes) {
                Ok(r) if status.is_success() => return Ok(r),
                Ok(_) => {}
                Err(WireError::Fault(f)) => return Err(SyncError::Fault(f)),
                Err(e) if status.is_success() => {
                    return Err(SyncError::Wire {
                        op: <O::Response as SoapBody>::NAME,
                        source: e,
                    })
                }
                Err(_) => {}
            }
        }
        Err(SyncError::Http {
            status: status.as_u16(),
            url: url.to_string(),
        })
    }
}

impl UpstreamClient {
    /// Reads an answer body of at most `upstream.max_answer_size` bytes: a bigger announced
    /// length is refused before reading, a bigger body as soon as it passes the bound (the
    /// connection is dropped; nothing more is read or kept). Not retried.
    async fn read_answer(
        &self,
        url: &str,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, SyncError> {
        let max = self.max_answer;
        let too_big = |what: String| {
            SyncError::Protocol(format!(
                "{url}: answer {what} is larger than upstream.max_answer_size ({max} bytes)"
            ))
        };
        let announced = resp.content_length();
        if let Some(n) = announced.filter(|n| *n > max) {
            return Err(too_big(format!("of {n} bytes")));
        }
        let mut body = Vec::with_capacity(announced.unwrap_or(0).min(max) as usize);
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                SyncError::Network(format!(
                    "{url}: reading answer: {}",
                    crate::logging::chain(&e)
                ))
            })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_big("streamed".into()));
            }
            body.extend_from_slice(&chunk);
        }
    }
}

impl SyncError {
    /// Worth retrying: network errors, gateway errors, `ServerBusy`.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Http { status, .. } => matches!(status, 502..=504),
            Self::Fault(f) => f.error_code.dss_reaction() == FaultReaction::BackOff,
            _ => false,
        }
    }
}
