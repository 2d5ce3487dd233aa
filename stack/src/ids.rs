//! Ids and timestamps of the objects the stack creates itself (responses, output items, tool
//! calls): random outside tests; inside a test, derived from the test id and a per-test counter,
//! so that every run of a test mints the same ids and every id the stack sends to a provider or a
//! tool is stable, which keeps request keys from drifting.

use crate::context;

/// 2026-01-01T00:00:00Z: the base of the timestamps minted inside tests.
const TEST_EPOCH: i64 = 1_767_225_600;

/// A new id `{prefix}_{32 hex digits}`: 16 from the test id and 16 from the counter of `prefix`
/// inside a test, random otherwise.
pub fn mint(prefix: &str) -> String {
    match context::next_in_test(prefix) {
        Some((hash, n)) => format!("{prefix}_{hash}{n:016x}"),
        None => format!("{prefix}_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// The creation time (unix seconds) of a new object: the clock outside tests; inside a test, a
/// fixed time derived from the test id plus the test's counter of created objects.
pub fn created_at() -> i64 {
    match context::next_in_test("created_at") {
        Some((hash, n)) => {
            let spread = i64::from_str_radix(&hash[..5], 16).unwrap_or(0);
            TEST_EPOCH + spread + i64::try_from(n).unwrap_or(0)
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_outside_tests_are_random_and_prefixed() {
        let (a, b) = (mint("resp"), mint("resp"));
        assert!(a.starts_with("resp_") && a.len() == 37, "{a}");
        assert_ne!(a, b);
    }

    #[cfg(feature = "replay")]
    #[tokio::test]
    async fn ids_inside_a_test_repeat_in_every_run() {
        use harness::context::TestContext;
        let run = || async {
            (
                mint("resp"),
                mint("msg"),
                mint("resp"),
                created_at(),
                created_at(),
            )
        };
        let first = TestContext::new("ids::t").scope(run()).await;
        let second = TestContext::new("ids::t").scope(run()).await;
        assert_eq!(first, second);
        assert!(first.0.ends_with("0000000000000000") && first.2.ends_with("0000000000000001"));
        assert_eq!(first.4, first.3 + 1);
        let other = TestContext::new("ids::u").scope(run()).await;
        assert_ne!(other.0, first.0);
    }
}
