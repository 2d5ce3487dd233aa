//! The environment variables the test runner ([`testkit`](crate::testkit)) reads.

/// The names of the test runner's environment variables (a profile's
/// [`runner`](super::Profile::runner)). The model values have theirs in the profile's
/// [roles](super::ModelRole::env).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerEnv {
    /// Names the suite of a run.
    pub suite: &'static str,
    /// Names the setup of a run.
    pub setup: &'static str,
    /// Restricts a run to some area folders (comma-separated).
    pub subdirs: &'static str,
    /// Holds the embedding dimension.
    pub embedding_dimension: &'static str,
    /// Makes a test process replace a running server instead of reusing it (`1`, `true`, `yes`).
    pub force_restart: &'static str,
    /// Says where the service under test lives (see
    /// [`StackConfig`](crate::testkit::StackConfig)).
    pub stack_config: &'static str,
    /// An older name of [`RunnerEnv::stack_config`], read when that is unset.
    pub legacy_stack_config: Option<&'static str>,
    /// The server port when the stack config gives none.
    pub port: &'static str,
}
