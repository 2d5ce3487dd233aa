//! A replay miss that explains itself: what was asked, what is recorded nearby, how they
//! differ, and the command that records it.

use std::fmt;

use super::canonical::CanonicalRequest;
use super::store::Store;

/// One recording close to a missed request.
#[derive(Debug, Clone)]
pub struct NearRecording {
    /// Its key.
    pub request_hash: String,
    /// Its test identity.
    pub test_id: Option<String>,
    /// Its occurrence index.
    pub occurrence: u32,
    /// Its model.
    pub model: Option<String>,
    /// Its provider label.
    pub provider: Option<String>,
    /// Its blob, relative to the recordings directory.
    pub response_file: String,
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
    /// Model named in the body.
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
}

impl std::error::Error for ReplayMiss {}

const MAX_DIFF_LINES: usize = 40;

impl ReplayMiss {
    pub(crate) fn new(
        store: &Store,
        canonical: &CanonicalRequest,
        request_hash: String,
        occurrence: u32,
        record_command: &str,
    ) -> ReplayMiss {
        let model = canonical.body.model().map(str::to_owned);
        let wanted = canonical.body.to_pretty();
        let rows = store
            .nearest(
                &canonical.method,
                &canonical.path,
                model.as_deref(),
                canonical.test_id.as_deref(),
                3,
            )
            .unwrap_or_default();
        let nearest = rows
            .into_iter()
            .map(|row| {
                let rec = store.get(&row.request_hash).ok().flatten();
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
                    let (old, new) = (format!("{recorded}\n"), format!("{wanted}\n"));
                    let diff = similar::TextDiff::from_lines(&old, &new);
                    let text = diff
                        .unified_diff()
                        .context_radius(2)
                        .header("recorded", "requested")
                        .to_string();
                    truncate_lines(&text, MAX_DIFF_LINES)
                };
                NearRecording {
                    request_hash: row.request_hash,
                    test_id: row.test_id,
                    occurrence: row.occurrence,
                    model: row.model,
                    provider,
                    response_file: row.response_file,
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

fn truncate_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return text.trim_end().to_owned();
    }
    format!(
        "{}\n... ({} more lines)",
        lines[..max].join("\n"),
        lines.len() - max
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

impl fmt::Display for ReplayMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        if self.nearest.is_empty() {
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
                    n.response_file,
                    n.test_id.as_deref().unwrap_or("(none)"),
                    n.occurrence,
                    n.model.as_deref().unwrap_or("(none)")
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
                } else if n.test_id != self.test_id {
                    writeln!(f, "     same body, recorded under another test id")?;
                } else if n.occurrence != self.occurrence {
                    writeln!(
                        f,
                        "     same body and test: only occurrence {} is recorded; this test now sends the request again",
                        n.occurrence
                    )?;
                }
            }
        }
        writeln!(f, "To record it, run with a live provider:")?;
        write!(f, "    {}", self.record_command)
    }
}
