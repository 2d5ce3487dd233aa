//! `recordings`: inspect and maintain a recordings directory.
//!
//! ```text
//! recordings list [--test SUBSTR] [--endpoint SUBSTR]   one line per recording
//! recordings show HASH_PREFIX                           a recording's request and response
//! recordings stats                                      counts and sizes
//! recordings verify                                     check blobs and index; repairs the index
//! recordings reindex                                    rebuild index.sqlite from the blobs
//! recordings prune --known FILE [--delete]              recordings of tests that no longer exist
//! recordings compute-hash --method M --url U [--body JSON] [--test-id ID] [--provider P] [--occurrence N]
//! recordings rekey [--dry-run]                         move recordings to their keys under the current rules
//! recordings suites [--file suites.toml]                the suites' names, one a line (for prune's known list)
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use harness::recorder::format::RecordedResponse;
use harness::recorder::{
    CanonicalRequest, RECORDING_DIR_ENV, Rules, Store, default_recordings_dir, workspace_root,
};
use harness::testkit::SuitesFile;

#[derive(Parser)]
#[command(
    name = "recordings",
    about = "Inspect and maintain a record/replay recordings directory"
)]
struct Cli {
    /// The recordings directory (default: $LLAMA_STACK_TEST_RECORDING_DIR, else recordings/ at the workspace root).
    #[arg(long, global = true, env = RECORDING_DIR_ENV)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per recording: hash, test, endpoint, model, kind.
    List {
        /// Only tests whose id contains this.
        #[arg(long)]
        test: Option<String>,
        /// Only endpoints containing this.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Print one recording, by hash or unique hash prefix.
    Show {
        /// Hash or prefix.
        hash: String,
    },
    /// Counts and sizes.
    Stats,
    /// Check every blob and the index (the index is repaired on the way); fails on invalid blobs.
    Verify,
    /// Delete index.sqlite and rebuild it from the blobs.
    Reindex,
    /// List (or delete) recordings whose test id is not in the known list. Recordings made
    /// outside any test are kept.
    Prune {
        /// File with one known test id per line (e.g. from the suite's `--list --format terse`,
        /// whose `: test` suffixes are ignored); `-` for standard input.
        #[arg(long)]
        known: PathBuf,
        /// Delete them (default: only list them and exit 1 when there are any).
        #[arg(long)]
        delete: bool,
    },
    /// Show the canonical form and key of a request, as the recorder computes them.
    ComputeHash {
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// Full URL as the service sends it.
        #[arg(long)]
        url: String,
        /// JSON (or text) body.
        #[arg(long)]
        body: Option<String>,
        /// Test id.
        #[arg(long)]
        test_id: Option<String>,
        /// The provider label the service attaches (part of the key; the stack labels every
        /// request with its provider id, e.g. `llamacpp`).
        #[arg(long)]
        provider: Option<String>,
        /// Occurrence index.
        #[arg(long, default_value_t = 0)]
        occurrence: u32,
    },
    /// Move recordings to their keys under the current normalization rules (after the rules
    /// changed, e.g. when the rules that make requests of the same meaning hash the same were
    /// added). A recording whose stored body does not reproduce its key under the previous rules
    /// is left where it is and named.
    Rekey {
        /// Only say what would move.
        #[arg(long)]
        dry_run: bool,
    },
    /// The names of the suites a suites.toml defines, one a line: every suite whose tests
    /// `prune --known` must know (scripts/prune-recordings.sh lists each suite's tests).
    Suites {
        /// The suites file (default: suites.toml at the workspace root).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("recordings: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open(dir: &PathBuf) -> Result<Store> {
    if !dir.exists() {
        bail!(
            "no recordings directory at {} (pass --dir or set {RECORDING_DIR_ENV})",
            dir.display()
        );
    }
    let store = Store::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let r = store.sync_report();
    if r.recreated || r.added + r.updated + r.removed > 0 {
        eprintln!(
            "index repaired: recreated={} added={} updated={} removed={}",
            r.recreated, r.added, r.updated, r.removed
        );
    }
    if r.stale_temp_files > 0 {
        eprintln!(
            "removed {} temporary file(s) left in responses/ by writers that were killed",
            r.stale_temp_files
        );
    }
    Ok(store)
}

fn kind(r: &harness::recorder::store::IndexRow) -> String {
    match (r.is_streaming, r.status) {
        (true, Some(s)) => format!("stream {s}"),
        (false, Some(s)) => format!("http {s}"),
        (_, None) => "transport error".into(),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli.dir.unwrap_or_else(default_recordings_dir);
    match cli.command {
        Command::List { test, endpoint } => {
            let store = open(&dir)?;
            for r in store.rows()? {
                let tid = r.test_id.clone().unwrap_or_else(|| "(no test)".into());
                if test.as_deref().is_some_and(|t| !tid.contains(t))
                    || endpoint.as_deref().is_some_and(|e| !r.endpoint.contains(e))
                {
                    continue;
                }
                println!(
                    "{}  {} {}  {}  #{}  {}  {}",
                    r.request_hash.get(..12).unwrap_or(&r.request_hash),
                    r.method,
                    r.endpoint,
                    r.model.as_deref().unwrap_or("-"),
                    r.occurrence,
                    kind(&r),
                    tid
                );
            }
        }
        Command::Show { hash } => {
            let store = open(&dir)?;
            let matches: Vec<_> = store
                .rows()?
                .into_iter()
                .filter(|r| r.request_hash.starts_with(&hash))
                .collect();
            match matches.as_slice() {
                [] => bail!("no recording's hash starts with {hash:?}"),
                [one] => {
                    let text = std::fs::read_to_string(dir.join(&one.response_file))
                        .with_context(|| format!("reading {}", one.response_file))?;
                    println!("{}", text.trim_end());
                }
                many => bail!(
                    "{hash:?} matches {} recordings; give more characters",
                    many.len()
                ),
            }
        }
        Command::Stats => {
            let store = open(&dir)?;
            let rows = store.rows()?;
            let mut bytes = 0u64;
            for r in &rows {
                bytes += std::fs::metadata(dir.join(&r.response_file))
                    .map(|m| m.len())
                    .unwrap_or(0);
            }
            let streams = rows.iter().filter(|r| r.is_streaming).count();
            let tests: BTreeSet<_> = rows.iter().filter_map(|r| r.test_id.clone()).collect();
            println!("recordings: {}", rows.len());
            println!("streams:    {streams}");
            println!("tests:      {}", tests.len());
            println!(
                "no test id: {}",
                rows.iter().filter(|r| r.test_id.is_none()).count()
            );
            println!("blob bytes: {bytes}");
        }
        Command::Verify => {
            let store = open(&dir)?;
            let mut bad = store.sync_report().invalid.len();
            for (p, why) in &store.sync_report().invalid {
                println!("INVALID {}: {why}", p.display());
            }
            for r in store.rows()? {
                match store.get(&r.request_hash) {
                    Ok(Some(rec)) => {
                        if let RecordedResponse::Stream { events, .. } = &rec.response
                            && events.is_empty()
                        {
                            println!("WARNING {}: a stream with no events", r.response_file);
                        }
                    }
                    Ok(None) => {
                        bad += 1;
                        println!("MISSING {}", r.response_file);
                    }
                    Err(e) => {
                        bad += 1;
                        println!("INVALID {e}");
                    }
                }
            }
            if bad > 0 {
                println!("{bad} problem(s); delete the listed files and record again");
                return Ok(ExitCode::from(1));
            }
            println!(
                "ok: {} recordings, index matches the blobs",
                store.rows()?.len()
            );
        }
        Command::Reindex => {
            for suffix in ["", "-wal", "-shm"] {
                let p = dir.join(format!("{}{suffix}", harness::recorder::store::INDEX_FILE));
                if p.exists() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                }
            }
            let store = open(&dir)?;
            println!("indexed {} recordings", store.rows()?.len());
        }
        Command::Prune { known, delete } => {
            let text = if known.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&known)
                    .with_context(|| format!("reading {}", known.display()))?
            };
            let known: BTreeSet<String> = text
                .lines()
                .map(|l| l.trim())
                .map(|l| l.strip_suffix(": test").unwrap_or(l).to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            if known.is_empty() {
                bail!(
                    "the known-test list is empty; refusing to treat every recording as orphaned"
                );
            }
            let store = open(&dir)?;
            let orphans: Vec<_> = store
                .rows()?
                .into_iter()
                .filter(|r| r.test_id.as_ref().is_some_and(|t| !known.contains(t)))
                .collect();
            for r in &orphans {
                println!(
                    "orphan {}  {}",
                    r.response_file,
                    r.test_id.as_deref().unwrap_or("")
                );
            }
            if delete {
                let n = store.delete(
                    &orphans
                        .iter()
                        .map(|r| r.request_hash.clone())
                        .collect::<Vec<_>>(),
                )?;
                println!("deleted {n} orphaned recording(s)");
            } else if !orphans.is_empty() {
                println!(
                    "{} orphaned recording(s); run again with --delete to remove them",
                    orphans.len()
                );
                return Ok(ExitCode::from(1));
            } else {
                println!("no orphaned recordings");
            }
        }
        Command::ComputeHash {
            method,
            url,
            body,
            test_id,
            provider,
            occurrence,
        } => {
            let url = url::Url::parse(&url).with_context(|| format!("{url:?} is not a URL"))?;
            let rules = Rules::for_recordings_dir(&dir)?;
            let c = CanonicalRequest::new(
                &method,
                &url,
                body.as_deref().map(str::as_bytes),
                test_id.as_deref(),
                &rules,
            )
            .with_provider(provider.as_deref());
            println!("key text: {}", c.key_text(occurrence));
            println!("hash:     {}", c.key(occurrence));
            let exists = dir
                .join("responses")
                .join(format!("{}.json", c.key(occurrence)))
                .exists();
            println!("recorded: {}", if exists { "yes" } else { "no" });
        }
        Command::Rekey { dry_run } => return rekey(&dir, dry_run),
        Command::Suites { file } => {
            let path = match file {
                Some(path) => path,
                None => workspace_root(
                    &std::env::current_dir().context("finding the current directory")?,
                )
                .join("suites.toml"),
            };
            for name in SuitesFile::load(&path)?.suites.keys() {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `recordings rekey`: each recording whose stored request reproduces its key under the
/// previous rules and has another key under the current ones is written under the new key and
/// its old blob removed.
fn rekey(dir: &PathBuf, dry_run: bool) -> Result<ExitCode> {
    let store = open(dir)?;
    let (old_rules, new_rules) = (
        Rules::for_recordings_dir_v1(dir)?,
        Rules::for_recordings_dir(dir)?,
    );
    let (mut moved, mut stuck) = (0usize, 0usize);
    for row in store.rows()? {
        let Some(mut rec) = store.get(&row.request_hash)? else {
            continue;
        };
        let test_id = rec.test_id.clone();
        let key = |rules: &Rules| {
            CanonicalRequest::from_recorded(&rec.request, test_id.as_deref(), rules)
                .key(rec.occurrence)
        };
        let (old, new) = (key(&old_rules), key(&new_rules));
        if new == rec.request_hash {
            continue;
        }
        if old != rec.request_hash {
            stuck += 1;
            println!(
                "kept   {} (its stored body does not reproduce its key: it held a value scrubbed as a secret; record it again)",
                row.response_file
            );
            continue;
        }
        println!("rekey  {} -> {new}", row.response_file);
        moved += 1;
        if !dry_run {
            let old_hash = std::mem::replace(&mut rec.request_hash, new.clone());
            rec.request.canonical_body =
                CanonicalRequest::from_recorded(&rec.request, test_id.as_deref(), &new_rules)
                    .body
                    .to_value();
            store.put(&rec)?;
            store.delete(&[old_hash])?;
        }
    }
    println!(
        "{moved} recording(s) {}, {stuck} kept",
        if dry_run { "would move" } else { "moved" }
    );
    Ok(ExitCode::SUCCESS)
}
