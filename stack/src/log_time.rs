//! The log lines' timestamps: what tracing-subscriber's `SystemTime` writes (UTC, RFC 3339, with
//! microseconds: `2026-11-30T09:09:06.123456Z`), with the date and the time of day written once
//! a second per thread instead of for every line. Formatting the whole timestamp was about a
//! quarter of the cost of a request's access line (callgrind, issue 13); tracing-subscriber's
//! timers have no such cache, hence this one.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The [`FormatTime`] of the `stack` binary's log lines (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LineTime;

impl FormatTime for LineTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let written = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|since| write_at(since, w));
        // Before 1970 or after 9999, or with this thread's cache gone (the thread ending) or in
        // use: the plain timer, which writes what it can.
        written.unwrap_or_else(|| tracing_subscriber::fmt::time::SystemTime.format_time(w))
    }
}

thread_local! {
    /// The last second written on this thread, and its text up to the seconds.
    static SECOND: RefCell<Option<(u64, String)>> = const { RefCell::new(None) };
}

/// Writes the time `since` the Unix epoch; `None`, having written nothing, when this thread's
/// cache cannot be used or the second has no four-digit year.
fn write_at(since: Duration, w: &mut impl fmt::Write) -> Option<fmt::Result> {
    let second = since.as_secs();
    SECOND
        .try_with(|cache| {
            let mut cached = cache.try_borrow_mut().ok()?;
            let text = match &mut *cached {
                Some((s, text)) if *s == second => text,
                slot => &mut slot.insert((second, second_text(second)?)).1,
            };
            Some(write!(w, "{text}.{:06}Z", since.subsec_micros()))
        })
        .ok()
        .flatten()
}

/// `second` (since the epoch) as `YYYY-MM-DDTHH:MM:SS`, UTC (`None` past the year 9999).
fn second_text(second: u64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(second).ok()?).ok()?;
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(since: Duration) -> String {
        let mut text = String::new();
        match write_at(since, &mut text) {
            Some(Ok(())) => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_rfc3339_utc_with_microseconds() {
        assert_eq!(at(Duration::ZERO), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            at(Duration::new(1_700_000_000, 123_456_789)),
            "2023-11-14T22:13:20.123456Z"
        );
        // The same second again (cached), then the next one.
        assert_eq!(
            at(Duration::new(1_700_000_000, 7_000)),
            "2023-11-14T22:13:20.000007Z"
        );
        assert_eq!(
            at(Duration::new(1_700_000_001, 999_999_999)),
            "2023-11-14T22:13:21.999999Z"
        );
        // Past 9999 (not written here: the plain timer takes over).
        let mut text = String::new();
        assert!(write_at(Duration::from_secs(253_402_300_800), &mut text).is_none());
        assert!(text.is_empty());
    }

    #[test]
    fn writes_what_tracing_subscribers_timer_writes() {
        // Both timers, the same second: the same text but for the microseconds (unless the second
        // turned in between, which the second try rules out).
        let shape = |text: &str| text.split('.').next().map(str::to_owned);
        for _ in 0..2 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            LineTime
                .format_time(&mut Writer::new(&mut ours))
                .unwrap_or_else(|e| panic!("{e}"));
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (ours.len(), ours.ends_with('Z')),
                (theirs.len(), true),
                "{ours} {theirs}"
            );
            if shape(&ours) == shape(&theirs) {
                return;
            }
        }
        panic!("the two timers wrote different seconds twice");
    }
}
