//! The kind of a transport failure (no HTTP response): what the recorder stores in a recording
//! as `error_kind` and the stack maps to its error types.

use std::fmt;
use std::str::FromStr;

/// How a request failed without an HTTP response. Written as `timeout`, `connect`, `body` or
/// `other`; any other text reads as [`TransportKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The request timed out.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The response body broke off or could not be decoded.
    Body,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// The spelling in recordings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Body => "body",
            Self::Other => "other",
        }
    }

    /// Reads a spelling; unknown text is [`TransportKind::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "timeout" => Self::Timeout,
            "connect" => Self::Connect,
            "body" => Self::Body,
            _ => Self::Other,
        }
    }
}

impl FromStr for TransportKind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl From<&str> for TransportKind {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for TransportKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for TransportKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TransportKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::TransportKind;

    #[test]
    fn spellings_round_trip_and_unknown_text_is_other() {
        for kind in [
            TransportKind::Timeout,
            TransportKind::Connect,
            TransportKind::Body,
            TransportKind::Other,
        ] {
            assert_eq!(kind.as_str().parse::<TransportKind>(), Ok(kind));
        }
        assert_eq!(TransportKind::parse("reset"), TransportKind::Other);
        let json = serde_json::to_string(&TransportKind::Connect).unwrap();
        assert_eq!(json, r#""connect""#);
        let read: TransportKind = serde_json::from_str(r#""reset""#).unwrap();
        assert_eq!(read, TransportKind::Other);
    }
}
