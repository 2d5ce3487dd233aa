//! End-to-end test of `harness::testkit::run_suite`: this binary is both a small demo suite
//! (when `RUNNER_DEMO_CHILD` is set) and the tests that run it as a child process with the
//! command lines `cargo test` and nextest use.

use std::path::Path;
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use futures::FutureExt;
use futures::future::BoxFuture;
use harness::context::TestContext;
use harness::profile::llama_stack::{LlamaStackModels, roles};
use harness::testkit::server::port_open;
use harness::testkit::{TestCase, TestEnv, ensure_server, run_suite, skip};
use libtest_mimic::{Arguments, Failed, Trial};

mod support;

const CHILD_ENV: &str = "RUNNER_DEMO_CHILD";

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runner-suites.toml");
        return run_suite(demo_cases(), &suites);
    }
    let args = Arguments::from_args();
    libtest_mimic::run(&args, checks()).exit_code()
}

// ---------------------------------------------------------------------------------------------
// The demo suite.

fn demo_cases() -> Vec<TestCase> {
    vec![
        TestCase::new("inference/test_chat.rs::basic", &[roles::TEXT], chat_basic),
        TestCase::new(
            "inference/test_embed.rs::dims",
            &[roles::EMBEDDING],
            embed_dims,
        ),
        TestCase::new("inference/test_vision.rs::image", &[roles::VISION], vision),
        TestCase::new("models/test_list.rs::needs_server", &[], needs_server),
        TestCase::new("models/test_list.rs::fails", &[], fails),
        TestCase::new(
            "responses/test_basic.rs::create",
            &[roles::TEXT],
            chat_basic,
        ),
        TestCase::new("server/test_server.rs::a", &[], server),
        TestCase::new("server/test_server.rs::b", &[], server),
        TestCase::new("server/test_server.rs::c", &[], server),
    ]
}

fn chat_basic(env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async move {
        let ctx = TestContext::current().context("no test context")?;
        ensure!(ctx.test_id() == env.test_id(), "context {}", ctx.test_id());
        let expected = format!("[txt={}]", env.text_model());
        ensure!(env.test_id().ends_with(&expected), "id {}", env.test_id());
        // The identity survives awaits on the runtime's worker threads.
        tokio::task::yield_now().await;
        ensure!(TestContext::current().is_some_and(|c| c.test_id() == env.test_id()));
        let url = std::env::var("DEMO_URL").unwrap_or_default();
        let want = std::env::var("DEMO_EXPECT_URL").unwrap_or_else(|_| "http://demo".into());
        ensure!(url == want, "DEMO_URL={url}, want {want}");
        Ok(())
    }
    .boxed()
}

fn embed_dims(env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async move {
        ensure!(
            env.embedding_dimension() == 384,
            "{}",
            env.embedding_dimension()
        );
        ensure!(env.embedding_model() == "demo/e");
        ensure!(env.setup() == Some("demo") && env.suite() == Some("base"));
        Ok(())
    }
    .boxed()
}

fn vision(_env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async { Err(anyhow!("a skipped test must not run")) }.boxed()
}

fn needs_server(_env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async { Err(skip("needs a server")) }.boxed()
}

fn fails(_env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async { Err(anyhow!("the inner cause")).context("the outer step") }.boxed()
}

/// Starts (or reuses) a tiny HTTP server on `DEMO_SERVER_PORT`; with `DEMO_HANG` set, then hangs
/// (so a check can kill the run midway).
fn server(_env: TestEnv) -> BoxFuture<'static, anyhow::Result<()>> {
    async {
        let Ok(port) = std::env::var("DEMO_SERVER_PORT") else {
            return Err(skip("DEMO_SERVER_PORT is not set"));
        };
        let port: u16 = port.parse().context("DEMO_SERVER_PORT")?;
        let mut spec = support::python_http_server(port);
        spec.log_file = std::env::temp_dir().join(format!("harness-runner-demo-{port}.log"));
        let handle = tokio::task::spawn_blocking(move || ensure_server(&spec)).await??;
        println!("started_by_us={}", handle.started_by_us);
        if std::env::var_os("DEMO_HANG").is_some() {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(())
    }
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// The demo suite with `args`, in an environment cleared of this process's run settings (it runs
/// as under `cargo test`: its own run owner), plus `env`.
fn demo_command(args: &[&str], env: &[(&str, &str)]) -> Result<Command, Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let mut command = Command::new(exe);
    command.args(args).env(CHILD_ENV, "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("LLAMA_STACK_TEST_")
            || key.starts_with("NEXTEST")
            || key.starts_with("HARNESS_")
            || key == "DEMO_URL"
        {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    Ok(command)
}

fn demo(args: &[&str], env: &[(&str, &str)]) -> Result<Output, Failed> {
    demo_command(args, env)?
        .output()
        .map_err(|e| format!("running the demo: {e}").into())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check(cond: bool, what: &str, out: &Output) -> Result<(), Failed> {
    if cond {
        return Ok(());
    }
    Err(format!(
        "{what}\n--- stdout\n{}--- stderr\n{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

fn listed(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

fn free_port() -> Result<u16, Failed> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Polls `cond` every 100 ms for at most `within`.
fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn checks() -> Vec<Trial> {
    vec![
        Trial::test("one_server_for_the_run_gone_after_it", || {
            let port = free_port()?;
            let port_s = port.to_string();
            let out = demo(
                &["--test-threads", "2"],
                &[
                    ("LLAMA_STACK_TEST_SUITE", "server"),
                    ("DEMO_SERVER_PORT", &port_s),
                ],
            )?;
            check(out.status.success(), "run failed", &out)?;
            let text = stdout(&out);
            check(
                text.matches("started_by_us=true").count() == 1
                    && text.matches("started_by_us=false").count() == 2,
                "one start, two reuses",
                &out,
            )?;
            check(
                eventually(Duration::from_secs(20), || !port_open("127.0.0.1", port)),
                "server still listening after the run",
                &out,
            )
        }),
        Trial::test("no_server_left_when_the_run_is_killed", || {
            let port = free_port()?;
            let port_s = port.to_string();
            // The child is its own run owner, as under `cargo test`.
            let mut child = demo_command(
                &["--exact", "server/test_server.rs::a"],
                &[
                    ("LLAMA_STACK_TEST_SUITE", "server"),
                    ("DEMO_SERVER_PORT", &port_s),
                    ("DEMO_HANG", "1"),
                ],
            )?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
            let up = eventually(Duration::from_secs(60), || port_open("127.0.0.1", port));
            let _ = child.kill();
            let _ = child.wait();
            if !up {
                return Err("the server never came up".into());
            }
            if !eventually(Duration::from_secs(20), || !port_open("127.0.0.1", port)) {
                return Err(
                    format!("server still listening on {port} after the run was killed").into(),
                );
            }
            Ok(())
        }),
        Trial::test("lists_expanded_trials_like_libtest", || {
            let out = demo(&["--list", "--format", "terse"], &[])?;
            check(out.status.success(), "list failed", &out)?;
            let names = listed(&out);
            let want = [
                "inference/test_chat.rs::basic[txt=demo/a]",
                "inference/test_chat.rs::basic[txt=demo/b]",
                "inference/test_embed.rs::dims[emb=demo/e]",
                "inference/test_vision.rs::image",
                "models/test_list.rs::needs_server",
                "models/test_list.rs::fails",
            ];
            check(names == want, &format!("listed {names:?}"), &out)?;
            let out = demo(&["--list", "--format", "terse", "--ignored"], &[])?;
            let names = listed(&out);
            check(
                names == ["inference/test_vision.rs::image"],
                &format!("ignored: {names:?}"),
                &out,
            )
        }),
        Trial::test("runs_and_summarises_skips", || {
            let out = demo(
                &[
                    "--skip",
                    "models/test_list.rs::fails",
                    "--test-threads",
                    "2",
                ],
                &[],
            )?;
            let text = stdout(&out);
            check(out.status.success(), "run failed", &out)?;
            check(
                text.contains("3 passed; 0 failed; 2 ignored"),
                "counts",
                &out,
            )?;
            check(
                text.contains("ignored (needs a server)"),
                "runtime skip",
                &out,
            )?;
            check(
                text.contains("skipped 2 tests:")
                    && text.contains("1 x needs a server")
                    && text.contains(
                        "1 x no vision model: set LLAMA_STACK_TEST_VISION_MODEL or pick a setup that has one\n      inference/test_vision.rs::image",
                    ),
                "summary",
                &out,
            )
        }),
        Trial::test("exact_runs_one_trial_and_shows_the_error_chain", || {
            let out = demo(&["--exact", "models/test_list.rs::fails"], &[])?;
            check(!out.status.success(), "should fail", &out)?;
            check(
                stdout(&out).contains("the outer step: the inner cause"),
                "chain",
                &out,
            )?;
            check(stdout(&out).contains("1 failed"), "one trial", &out)
        }),
        Trial::test("ignored_trials_give_their_reason_when_run", || {
            let out = demo(
                &["--exact", "inference/test_vision.rs::image", "--ignored"],
                &[],
            )?;
            check(out.status.success(), "run failed", &out)?;
            check(
                stdout(&out)
                    .contains("ignored (no vision model: set LLAMA_STACK_TEST_VISION_MODEL"),
                "reason",
                &out,
            )
        }),
        Trial::test("explicit_values_and_env_win", || {
            let out = demo(
                &["inference/test_chat.rs"],
                &[
                    ("LLAMA_STACK_TEST_TEXT_MODEL", "x/one"),
                    ("DEMO_URL", "http://mine"),
                    ("DEMO_EXPECT_URL", "http://mine"),
                ],
            )?;
            check(out.status.success(), "run failed", &out)?;
            check(
                stdout(&out).contains("inference/test_chat.rs::basic[txt=x/one] ... ok")
                    && stdout(&out).contains("1 passed"),
                "explicit model",
                &out,
            )
        }),
        Trial::test("suite_and_subdirs_select", || {
            let out = demo(
                &["--list", "--format", "terse"],
                &[("LLAMA_STACK_TEST_SUITE", "responses")],
            )?;
            let names = listed(&out);
            check(
                names
                    == [
                        "responses/test_basic.rs::create[txt=demo/a]",
                        "responses/test_basic.rs::create[txt=demo/b]",
                    ],
                &format!("responses suite: {names:?}"),
                &out,
            )?;
            let out = demo(
                &["--list", "--format", "terse"],
                &[("LLAMA_STACK_TEST_SUBDIRS", "models")],
            )?;
            let names = listed(&out);
            check(
                names
                    == [
                        "models/test_list.rs::needs_server",
                        "models/test_list.rs::fails",
                    ],
                &format!("subdirs: {names:?}"),
                &out,
            )
        }),
        Trial::test("unknown_suite_lists_known_ones", || {
            let out = demo(&["--list"], &[("LLAMA_STACK_TEST_SUITE", "nope")])?;
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            check(
                !out.status.success()
                    && err.contains(
                        "unknown suite \"nope\"; known suites: base, responses, server\n",
                    ),
                "error",
                &out,
            )
        }),
        Trial::test("runtime_skips_under_nextest_reach_the_skip_summary", || {
            // The run owner, as a script's `HARNESS_RUN_OWNER_PID=$$`: a process of its own, so
            // that this check's file is not another check's.
            let mut owner = Command::new("sleep")
                .arg("60")
                .spawn()
                .map_err(|e| e.to_string())?;
            let owner_pid = owner.id().to_string();
            let run = [
                ("HARNESS_RUN_OWNER_PID", owner_pid.as_str()),
                ("NEXTEST_RUN_ID", "00000000-0000-0000-0000-000000000000"),
            ];
            let result = (|| {
                // As nextest runs a trial: alone in its process. It passes (ignored), so nextest
                // would show PASS.
                let out = demo(
                    &[
                        "--exact",
                        "models/test_list.rs::needs_server",
                        "--nocapture",
                    ],
                    &run,
                )?;
                check(out.status.success(), "the skipping trial failed", &out)?;
                check(stdout(&out).contains("1 ignored"), "runtime skip", &out)?;
                // The summary afterwards, with the run's filter: the runtime skip is there.
                let with_list = [run[0], run[1], ("HARNESS_LIST_SKIPS", "1")];
                let out = demo(&["models/"], &with_list)?;
                check(out.status.success(), "summary failed", &out)?;
                check(
                    stdout(&out)
                        == "skipped 1 test:\n  1 x needs a server\n      models/test_list.rs::needs_server\n",
                    "filtered summary with the runtime skip",
                    &out,
                )?;
                // Reported once: the next summary of the run has only the static skip.
                let out = demo(&[], &with_list)?;
                check(
                    stdout(&out).starts_with("skipped 1 test:\n  1 x no vision model"),
                    "runtime skips taken by the first summary",
                    &out,
                )?;
                // Both kinds together.
                let out = demo(&["--exact", "models/test_list.rs::needs_server"], &run)?;
                check(out.status.success(), "the skipping trial failed", &out)?;
                let out = demo(&[], &with_list)?;
                let text = stdout(&out);
                check(
                    text.starts_with("skipped 2 tests:\n")
                        && text.contains(
                            "1 x needs a server\n      models/test_list.rs::needs_server",
                        )
                        && text.contains("1 x no vision model"),
                    "summary of both kinds",
                    &out,
                )
            })();
            let _ = owner.kill();
            let _ = owner.wait();
            result
        }),
        Trial::test("list_skips_prints_the_static_skips", || {
            let out = demo(&[], &[("HARNESS_LIST_SKIPS", "1")])?;
            check(out.status.success(), "failed", &out)?;
            check(
                stdout(&out).starts_with("skipped 1 test:\n  1 x no vision model"),
                "summary",
                &out,
            )
        }),
    ]
}
