//! Log output and error text: the tracing subscriber every verb installs (human text with
//! colour only on a terminal, or one JSON object per line; under systemd each line carries
//! its syslog priority so journald maps the level), and [`chain`], which writes an error
//! with its whole chain of causes ("connection refused", not only "error sending request").

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `e` and every cause under it, joined with ": ". A cause whose text its parent already
/// shows is left out; `io::Error`s wrapping another error are opened (their `source()`
/// skips the wrapped error).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = next_cause(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = next_cause(c);
    }
    out
}

fn next_cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return Some(inner);
    }
    e.source()
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal (`JOURNAL_STREAM` names its
/// device and inode), so lines should carry a `<N>` priority prefix.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on fd 2 writes only into the zeroed struct we pass.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// Wraps a formatter and starts each line with `<N>`, the event's syslog priority.
struct Prioritized<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritized<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the process's subscriber: `filter` (a `RUST_LOG`-style directive; default
/// `RUST_LOG`, else `info`), written to stderr in `format`.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter.map(EnvFilter::new).unwrap_or_else(|| {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let journal = stderr_is_journal();
    let ansi = !journal && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Journald stamps every line itself; keep the time for files and terminals.
    match (format, journal) {
        (LogFormat::Json, false) => builder.event_format(json_format()).init(),
        (LogFormat::Json, true) => builder.event_format(Prioritized(json_format())).init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder
            .event_format(Prioritized(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .init(),
    }
}

fn json_format() -> tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json> {
    tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("upstream: {0}")]
        struct Outer(#[source] std::io::Error);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = std::io::Error::other(Outer(std::io::Error::other("tcp connect error")));
        assert_eq!(
            chain(&wrapped),
            "upstream: tcp connect error",
            "io::Error shows its inner error's text: not repeated"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Req(#[source] std::io::Error);
        let e = Req(refused);
        assert_eq!(chain(&e), "error sending request: connection refused");
    }

    #[test]
    fn priorities_are_syslog_numbers() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
    }
}
