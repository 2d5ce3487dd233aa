//! Where the mode is decided (`LLAMA_STACK_TEST_INFERENCE_MODE`), and what it means for one
//! request: [`plan`] is the one place that turns a mode and what the store holds into the steps
//! the recorder takes ([`Plan`]).

use std::fmt;
use std::str::FromStr;

use super::error::RecorderError;

/// Llama Stack's variable that selects the mode; a profile names its own
/// ([`EnvNames::mode`](crate::profile::EnvNames::mode)).
pub use crate::profile::llama_stack::MODE_ENV;

/// What the recorder does with each outbound request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Answer from the recordings only; never touch the network; a miss is an error. The default.
    Replay,
    /// Answer from the recordings when present, otherwise call the provider and store the answer.
    RecordIfMissing,
    /// Always call the provider and replace whatever is stored for the request's key.
    Record,
    /// Pass through to the provider and store nothing.
    Live,
}

impl Mode {
    /// Every mode, in the order the documentation lists them.
    pub const ALL: [Mode; 4] = [
        Mode::Replay,
        Mode::RecordIfMissing,
        Mode::Record,
        Mode::Live,
    ];

    /// The mode's name as written in the environment variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Replay => "replay",
            Mode::RecordIfMissing => "record-if-missing",
            Mode::Record => "record",
            Mode::Live => "live",
        }
    }

    /// Reads the mode from [`MODE_ENV`]: `Ok(None)` when the variable is unset.
    pub fn from_env() -> Result<Option<Mode>, RecorderError> {
        Mode::from_env_var(MODE_ENV)
    }

    /// Reads the mode from the environment variable `name`: `Ok(None)` when it is unset.
    pub fn from_env_var(name: &'static str) -> Result<Option<Mode>, RecorderError> {
        let invalid = |value: String| RecorderError::InvalidMode { var: name, value };
        match std::env::var(name) {
            Ok(v) => Mode::parse(&v).map(Some).ok_or_else(|| invalid(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid("<not unicode>".into())),
        }
    }

    /// The mode a name stands for (lenient on case and `_` for `-`).
    fn parse(s: &str) -> Option<Mode> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Mode::ALL.into_iter().find(|m| m.as_str() == wanted)
    }

    /// Whether the mode needs the recordings store at all (every mode but `live`).
    pub fn uses_store(self) -> bool {
        !matches!(self, Mode::Live)
    }

    /// Whether a stored recording answers the request, so the store is looked up before [`plan`]
    /// decides.
    pub fn reads_recordings(self) -> bool {
        matches!(self, Mode::Replay | Mode::RecordIfMissing)
    }
}

/// What the recorder does with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan<R> {
    /// Pass the request through to the provider; store nothing.
    Forward,
    /// Answer with this recording; the provider is not called.
    Replay(R),
    /// Fail with a replay miss; the provider is not called.
    Miss,
    /// Take the key's recording lock, then look again: replay a recording another recorder made
    /// meanwhile, else forward the request and store the answer (single flight across processes).
    RecordIfMissing,
    /// Forward the request and store the answer, replacing what is stored for the key.
    ForwardAndStore,
}

/// The plan for a request to a recorder that has a store (one without forwards everything),
/// given the mode and the recording stored for the request's key (`None` when there is none or
/// the mode does not [read recordings](Mode::reads_recordings)).
pub fn plan<R>(mode: Mode, recorded: Option<R>) -> Plan<R> {
    match (mode, recorded) {
        (Mode::Replay | Mode::RecordIfMissing, Some(rec)) => Plan::Replay(rec),
        (Mode::Replay, None) => Plan::Miss,
        (Mode::RecordIfMissing, None) => Plan::RecordIfMissing,
        (Mode::Record, _) => Plan::ForwardAndStore,
        (Mode::Live, _) => Plan::Forward,
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = RecorderError;

    /// Parses a mode name; the error names Llama Stack's [`MODE_ENV`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::parse(s).ok_or_else(|| RecorderError::InvalidMode {
            var: MODE_ENV,
            value: s.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_and_is_lenient_on_case_and_underscores() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert_eq!(
            "RECORD_IF_MISSING".parse::<Mode>().unwrap(),
            Mode::RecordIfMissing
        );
    }

    #[test]
    fn plans_follow_the_mode() {
        assert_eq!(plan(Mode::Replay, Some(1)), Plan::Replay(1));
        assert_eq!(plan::<u8>(Mode::Replay, None), Plan::Miss);
        assert_eq!(plan(Mode::RecordIfMissing, Some(1)), Plan::Replay(1));
        assert_eq!(
            plan::<u8>(Mode::RecordIfMissing, None),
            Plan::RecordIfMissing
        );
        assert_eq!(plan(Mode::Record, Some(1)), Plan::ForwardAndStore);
        assert_eq!(plan::<u8>(Mode::Record, None), Plan::ForwardAndStore);
        assert_eq!(plan(Mode::Live, Some(1)), Plan::Forward);
    }

    #[test]
    fn unknown_mode_lists_the_valid_ones() {
        let err = "replya".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("replya"), "{err}");
        for m in Mode::ALL {
            assert!(err.contains(m.as_str()), "{err}");
        }
    }
}
