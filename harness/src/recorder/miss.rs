//! A replay miss that explains itself: what was asked, what is recorded nearby, how they
//! differ, and the command that records it.
//!
//! Its cost is bounded whatever the body: the diffs run under a time budget
//! ([`DIFF_BUDGET`], after which `similar` settles for a coarser diff) on at most
//! [`MAX_DIFF_INPUT_LINES`] lines of each side, every shown line is cut at [`MAX_LINE_CHARS`]
//! characters, and the whole message at [`MAX_MESSAGE_BYTES`]; each cut says what it left out.
//! The recorder computes it on a blocking thread, off the async workers.

use std::fmt;
use std::time::{Duration, Instant};

use support::error::error_chain;

use super::canonical::CanonicalRequest;
use super::store::{IndexRow, Store};

/// One recording close to a missed request: its row of the index, and what the miss message
/// adds from its blob.
#[derive(Debug, Clone)]
pub struct NearRecording {
    /// Its row of the index (key, test identity, occurrence, model, blob path...).
    pub row: IndexRow,
    /// Its provider label (kept in the blob, not the index).
    pub provider: Option<String>,
    /// Unified diff from its canonical body to the missed request's (empty when equal).
    pub body_diff: String,
}

/// The error a replay miss produces: everything needed to understand and fix it.
#[derive(Debug, Clone)]
pub struct ReplayMiss {
    /// The key that was looked up.
    pub request_hash: String,
    /// The test identity the request was made under.
    pub test_id: Option<String>,
    /// Occurrence index of the request in its test.
    pub occurrence: u32,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub endpoint: String,
    /// Model named in the body (the profile's [index field](crate::profile::Profile::index_field)).
    pub model: Option<String>,
    /// The provider label the service attached.
    pub provider: Option<String>,
    /// The canonical body, pretty-printed.
    pub canonical_body: String,
    /// Nearest recordings, best first.
    pub nearest: Vec<NearRecording>,
    /// The recordings directory.
    pub recordings_dir: String,
    /// The command that records the request.
    pub record_command: String,
    /// Errors met reading the store while looking for nearby recordings (with their causes):
    /// when there are any, [`ReplayMiss::nearest`] may be incomplete, and an empty one does not
    /// mean that nothing is recorded.
    pub store_errors: Vec<String>,
}

impl std::error::Error for ReplayMiss {}

const MAX_DIFF_LINES: usize = 40;
/// Time all the diffs of one miss may take together.
pub const DIFF_BUDGET: Duration = Duration::from_millis(20);
/// Lines of each side a diff looks at.
pub const MAX_DIFF_INPUT_LINES: usize = 400;
/// Characters of one line shown.
pub const MAX_LINE_CHARS: usize = 400;
/// Bytes of the whole message (the error body and the log line).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

impl ReplayMiss {
    pub(crate) fn new(
        store: &Store,
        canonical: &CanonicalRequest,
        request_hash: String,
        occurrence: u32,
        record_command: &str,
        index_field: &str,
    ) -> ReplayMiss {
        let model = canonical.body.field(index_field).map(str::to_owned);
        let wanted = canonical.body.to_pretty();
        let deadline = Instant::now() + DIFF_BUDGET;
        let mut store_errors = Vec::new();
        let rows = store
            .nearest(
                &canonical.method,
                &canonical.path,
                model.as_deref(),
                canonical.test_id.as_deref(),
                3,
            )
            .unwrap_or_else(|e| {
                store_errors.push(error_chain(&e));
                Vec::new()
            });
        let nearest = rows
            .into_iter()
            .map(|row| {
                let rec = store.get(&row.request_hash).unwrap_or_else(|e| {
                    store_errors.push(error_chain(&e));
                    None
                });
                let provider = rec.as_ref().and_then(|r| r.request.provider.clone());
                let recorded = rec
                    .map(|rec| {
                        serde_json::to_string_pretty(&rec.request.canonical_body)
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                let recorded = if recorded == "null" {
                    "(no body)".to_owned()
                } else {
                    recorded
                };
                let body_diff = if recorded == wanted {
                    String::new()
                } else {
                    bounded_diff(&recorded, &wanted, deadline)
                };
                NearRecording {
                    row,
                    provider,
                    body_diff,
                }
            })
            .collect();
        ReplayMiss {
            request_hash,
            test_id: canonical.test_id.clone(),
            occurrence,
            method: canonical.method.clone(),
            endpoint: canonical.path.clone(),
            model,
            provider: canonical.provider.clone(),
            canonical_body: truncate_lines(&wanted, MAX_DIFF_LINES),
            nearest,
            recordings_dir: store.dir().display().to_string(),
            record_command: record_command_for(record_command, canonical.test_id.as_deref()),
            store_errors,
        }
    }
}

/// The command that records a missed request: the configured one with `{test_id}` filled in; for
/// a call made outside any test (no test id to filter on), the same command without the filter
/// part, since such calls happen whenever the service starts.
fn record_command_for(template: &str, test_id: Option<&str>) -> String {
    match test_id {
        Some(t) if !t.is_empty() => template.replace("{test_id}", t),
        _ => {
            let without = template
                .replace(" --pattern '{test_id}'", "")
                .replace(" -- '{test_id}'", "");
            if without.contains("{test_id}") {
                without.replace("{test_id}", "")
            } else {
                without
            }
        }
    }
}

impl ReplayMiss {
    /// A miss without nearby recordings or a record command (when explaining it failed).
    pub(crate) fn without_neighbours(
        canonical: &CanonicalRequest,
        request_hash: String,
        occurrence: u32,
        index_field: &str,
    ) -> ReplayMiss {
        ReplayMiss {
            request_hash,
            test_id: canonical.test_id.clone(),
            occurrence,
            method: canonical.method.clone(),
            endpoint: canonical.path.clone(),
            model: canonical.body.field(index_field).map(str::to_owned),
            provider: canonical.provider.clone(),
            canonical_body: truncate_lines(&canonical.body.to_pretty(), MAX_DIFF_LINES),
            nearest: Vec::new(),
            recordings_dir: String::new(),
            record_command: String::new(),
            store_errors: Vec::new(),
        }
    }
}

/// A unified diff from `recorded` to `wanted`, within the budget: at most
/// [`MAX_DIFF_INPUT_LINES`] lines of each side, computed until `deadline` (then coarser), shown
/// in at most [`MAX_DIFF_LINES`] lines.
fn bounded_diff(recorded: &str, wanted: &str, deadline: Instant) -> String {
    // Lines both sides share at the start and at the end are skipped first (linear), so the
    // change is found wherever it is; the rest is diffed within the budget.
    let old_lines: Vec<&str> = recorded.lines().collect();
    let new_lines: Vec<&str> = wanted.lines().collect();
    let prefix = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = old_lines[prefix..]
        .iter()
        .rev()
        .zip(new_lines[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let context = 2;
    let start = prefix.saturating_sub(context);
    let old_mid = &old_lines[start..old_lines.len() - suffix.saturating_sub(context)];
    let new_mid = &new_lines[start..new_lines.len() - suffix.saturating_sub(context)];
    let (old, old_total) = first_lines(&old_mid.join("\n"), MAX_DIFF_INPUT_LINES);
    let (new, new_total) = first_lines(&new_mid.join("\n"), MAX_DIFF_INPUT_LINES);
    let diff = similar::TextDiff::configure()
        .deadline(deadline)
        .diff_lines(old.as_str(), new.as_str());
    let mut text = String::new();
    if start > 0 {
        text.push_str(&format!("(the first {start} lines are the same)\n"));
    }
    if old_total > MAX_DIFF_INPUT_LINES || new_total > MAX_DIFF_INPUT_LINES {
        text.push_str(&format!(
            "(diff of the first {MAX_DIFF_INPUT_LINES} differing lines only: {old_total} and \
             {new_total} lines differ or follow)\n"
        ));
    }
    text.push_str(
        &diff
            .unified_diff()
            .context_radius(2)
            .header("recorded", "requested")
            .to_string(),
    );
    truncate_lines(&text, MAX_DIFF_LINES)
}

/// The first `max` lines of `text` (newline-terminated) and how many lines it has.
fn first_lines(text: &str, max: usize) -> (String, usize) {
    let total = text.lines().count();
    let mut out: String = text.lines().take(max).collect::<Vec<_>>().join("\n");
    out.push('\n');
    (out, total)
}

/// At most `max` lines, each cut at [`MAX_LINE_CHARS`] characters; what was cut is said.
fn truncate_lines(text: &str, max: usize) -> String {
    let lines: Vec<String> = text.lines().take(max).map(cut_line).collect();
    let total = text.lines().count();
    let mut out = lines.join("\n");
    if total > max {
        out.push_str(&format!("\n... ({} more lines)", total - max));
    }
    out
}

fn cut_line(line: &str) -> String {
    match line.char_indices().nth(MAX_LINE_CHARS) {
        None => line.to_owned(),
        Some((at, _)) => format!(
            "{}... ({} more characters)",
            &line[..at],
            line[at..].chars().count()
        ),
    }
}

/// `text` cut at [`MAX_MESSAGE_BYTES`] (on a character boundary), saying so.
fn cap_message(text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut at = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    format!(
        "{}\n... (message cut at {MAX_MESSAGE_BYTES} bytes of {})",
        &text[..at],
        text.len()
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

impl fmt::Display for ReplayMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.render(&mut text)?;
        f.write_str(&cap_message(text))
    }
}

impl ReplayMiss {
    fn render(&self, f: &mut String) -> fmt::Result {
        use std::fmt::Write as _;
        writeln!(
            f,
            "Recording not found for request hash {}",
            self.request_hash
        )?;
        writeln!(
            f,
            "  test:     {}",
            self.test_id
                .as_deref()
                .unwrap_or("(none: call made outside a test)")
        )?;
        writeln!(
            f,
            "  request:  {} {} (occurrence {} in this test)",
            self.method, self.endpoint, self.occurrence
        )?;
        writeln!(
            f,
            "  model:    {}",
            self.model.as_deref().unwrap_or("(none)")
        )?;
        if let Some(p) = &self.provider {
            writeln!(f, "  provider: {p}")?;
        }
        writeln!(f, "  store:    {}", self.recordings_dir)?;
        writeln!(f, "  canonical body:")?;
        write!(f, "{}", indent(&self.canonical_body))?;
        if !self.store_errors.is_empty() {
            writeln!(
                f,
                "Reading the recordings store failed, so the recordings below may be incomplete:"
            )?;
            for e in &self.store_errors {
                writeln!(f, "  - {e}")?;
            }
        }
        if self.nearest.is_empty() && !self.store_errors.is_empty() {
            writeln!(
                f,
                "No nearby recording of {} {} could be read.",
                self.method, self.endpoint
            )?;
        } else if self.nearest.is_empty() {
            writeln!(
                f,
                "No recording exists for {} {} at all.",
                self.method, self.endpoint
            )?;
        } else {
            writeln!(f, "Nearest recordings ({} {}):", self.method, self.endpoint)?;
            for (i, n) in self.nearest.iter().enumerate() {
                writeln!(
                    f,
                    "  {}. {} (test {}, occurrence {}, model {})",
                    i + 1,
                    n.row.response_file,
                    n.row.test_id.as_deref().unwrap_or("(none)"),
                    n.row.occurrence,
                    n.row.model.as_deref().unwrap_or("(none)")
                )?;
                if !n.body_diff.is_empty() {
                    write!(f, "{}", indent(&n.body_diff))?;
                } else if n.provider != self.provider {
                    writeln!(
                        f,
                        "     same body, recorded for provider {}",
                        n.provider
                            .as_deref()
                            .unwrap_or("(none: recorded before provider labels)")
                    )?;
                } else if n.row.test_id != self.test_id {
                    writeln!(f, "     same body, recorded under another test id")?;
                } else if n.row.occurrence != self.occurrence {
                    writeln!(
                        f,
                        "     same body and test: only occurrence {} is recorded; this test now sends the request again",
                        n.row.occurrence
                    )?;
                }
            }
        }
        writeln!(f, "To record it, run with a live provider:")?;
        write!(f, "    {}", self.record_command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_diff_is_cut_and_says_what_it_left_out() {
        let recorded: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let wanted = recorded.replace("line 10\n", "line ten\n");
        let diff = bounded_diff(&recorded, &wanted, Instant::now() + DIFF_BUDGET);
        assert!(
            diff.contains("-line 10") && diff.contains("+line ten"),
            "{diff}"
        );
        assert!(diff.contains("(the first 8 lines are the same)"), "{diff}");
        assert!(diff.lines().count() <= MAX_DIFF_LINES + 1, "{diff}");
        // A change past the first lines is found too.
        let late = recorded.replace("line 15000\n", "line fifteen thousand\n");
        let diff = bounded_diff(&recorded, &late, Instant::now() + DIFF_BUDGET);
        assert!(diff.contains("+line fifteen thousand"), "{diff}");
        // Changes spread over more lines than the budget: the first ones, and a note.
        let everywhere: String = (0..20_000).map(|i| format!("other {i}\n")).collect();
        let diff = bounded_diff(&recorded, &everywhere, Instant::now() + DIFF_BUDGET);
        assert!(diff.contains("differing lines only"), "{diff}");
    }

    #[test]
    fn long_lines_and_long_messages_are_cut() {
        let line = "x".repeat(10_000);
        let cut = truncate_lines(&line, 5);
        assert!(
            cut.len() < 500 && cut.ends_with("(9600 more characters)"),
            "{cut}"
        );
        let message = cap_message("é".repeat(MAX_MESSAGE_BYTES));
        assert!(message.len() < MAX_MESSAGE_BYTES + 100, "{}", message.len());
        assert!(
            message.ends_with(&format!("of {})", 2 * MAX_MESSAGE_BYTES)),
            "{}",
            &message[message.len() - 80..]
        );
    }
}
