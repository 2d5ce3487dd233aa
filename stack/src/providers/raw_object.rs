//! A provider's JSON object answer passed through as text: parsed at its top level only.
//!
//! A chat completion answer goes through the stack unchanged but for its `model` (the stack's id
//! instead of the provider's), and out again as JSON: to the caller and to the inference store.
//! Parsed into a [`Value`] tree and serialized twice, it cost a third of a replayed request's
//! instructions. Here the answer is checked to be JSON (all of it, as strictly as a [`Value`]
//! parse) without building anything, then cut into its top-level members, each kept as the
//! provider's text; a member is parsed only when asked for, and the object is written back by
//! joining the members. In-process callers that want a [`Value`] parse it once
//! ([`RawObject::to_value`]).
//!
//! The cut is made by [`top_level_members`], a scanner of our own: serde_json tells no byte
//! offsets, and its `RawValue` copies every member and skips over it less strictly than a parse
//! (a second pass). On text serde_json has just checked, the scanner only has to follow strings
//! and brackets.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::Value;

/// A JSON object, as its top-level members' names and texts (see the module docs).
#[derive(Clone)]
pub struct RawObject {
    /// The provider's text.
    source: String,
    /// In the order they came; a repeated name keeps its first place and its last value, as
    /// `serde_json`'s order-preserving map does.
    members: Vec<Member>,
    /// The object's text, written once after the last change (the caller and the inference
    /// store both want it).
    text: std::sync::OnceLock<String>,
}

#[derive(Clone)]
struct Member {
    name: String,
    /// The name as written (with its quotes).
    name_text: Range<usize>,
    value: MemberValue,
}

#[derive(Clone)]
enum MemberValue {
    /// As the provider wrote it.
    Source(Range<usize>),
    /// Replaced ([`RawObject::replace_str`]).
    Owned(String),
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Why bytes are not a [`RawObject`].
#[derive(Debug, thiserror::Error)]
pub enum NotAnObject {
    /// Not JSON at all.
    #[error("expected JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("expected a JSON object")]
    NotObject,
}

impl RawObject {
    /// Checks `bytes` (all of them, as strictly as parsing them into a [`Value`] would) and
    /// cuts the object into its members.
    pub fn parse(bytes: &[u8]) -> Result<Self, NotAnObject> {
        // The syntax, reading through without building anything; then the cut, which notices
        // what reading through does not check as a `Value` parse would (a `\u` escape: a lone
        // surrogate?; a number out of range; nesting past serde_json's limit; invalid UTF-8 in a
        // string). Such a document, and one naming serde_json's raw-value token (which its
        // `Value` parse treats as a raw value, not a member), is taken as that parse makes it.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(NotAnObject::NotJson)?;
        let text = std::str::from_utf8(bytes).ok();
        match (text, text.and_then(|t| top_level_members(t.as_bytes()))) {
            (Some(text), Some(cut))
                if !cut.needs_check
                    && memchr::memmem::find(bytes, RAW_VALUE_TOKEN.as_bytes()).is_none() =>
            {
                Self::from_cut(text, cut)
            }
            _ => Self::through_value(bytes),
        }
    }

    /// The rare path of [`RawObject::parse`]: the object serde_json's `Value` parse makes of
    /// `bytes`, cut from its own text.
    fn through_value(bytes: &[u8]) -> Result<Self, NotAnObject> {
        match serde_json::from_slice::<Value>(bytes) {
            Err(e) => Err(NotAnObject::NotJson(e)),
            Ok(object @ Value::Object(_)) => {
                let text = object.to_string();
                let cut = top_level_members(text.as_bytes()).ok_or(NotAnObject::NotObject)?;
                Self::from_cut(&text, cut)
            }
            Ok(_) => Err(NotAnObject::NotObject),
        }
    }

    /// The object `text` is, as [`top_level_members`] cut it.
    fn from_cut(text: &str, cut: Cut) -> Result<Self, NotAnObject> {
        let source = text.to_owned();
        let spans = cut.members;
        let mut members: Vec<Member> = Vec::with_capacity(spans.len());
        for (name_text, value) in spans {
            // The cut falls on ASCII bytes of checked JSON; checked here all the same, so that no
            // later slice of `source` can panic.
            let (Some(quoted), Some(_)) =
                (source.get(name_text.clone()), source.get(value.clone()))
            else {
                return Err(NotAnObject::NotObject);
            };
            let name = if quoted.contains('\\') {
                serde_json::from_str::<String>(quoted).map_err(NotAnObject::NotJson)?
            } else {
                quoted
                    .get(1..quoted.len().saturating_sub(1))
                    .unwrap_or_default()
                    .to_owned()
            };
            let value = MemberValue::Source(value);
            match members.iter_mut().find(|m| m.name == name) {
                Some(old) => old.value = value,
                None => members.push(Member {
                    name,
                    name_text,
                    value,
                }),
            }
        }
        Ok(RawObject {
            source,
            members,
            text: std::sync::OnceLock::new(),
        })
    }

    /// The text of member `name`, as the provider wrote it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .map(|m| self.value_text(m))
    }

    fn value_text<'a>(&'a self, member: &'a Member) -> &'a str {
        match &member.value {
            MemberValue::Source(range) => &self.source[range.clone()],
            MemberValue::Owned(text) => text,
        }
    }

    /// Member `name` when it is a string.
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        serde_json::from_str::<Cow<'_, str>>(self.get(name)?).ok()
    }

    /// Member `name` when it is an integer that fits an `i64`.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        serde_json::from_str::<i64>(self.get(name)?).ok()
    }

    /// Replaces member `name` with the string `value`, when the member exists and is a string.
    pub fn replace_str(&mut self, name: &str, value: &str) {
        let Some(index) = self.members.iter().position(|m| m.name == name) else {
            return;
        };
        if !self.value_text(&self.members[index]).starts_with('"') {
            return;
        }
        if let Ok(text) = serde_json::to_string(value) {
            self.members[index].value = MemberValue::Owned(text);
            self.text = std::sync::OnceLock::new();
        }
    }

    /// The object's JSON text: its members joined, each as it came.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| self.join())
    }

    /// [`RawObject::text`], owned.
    pub fn into_text(mut self) -> String {
        match self.text.take() {
            Some(text) => text,
            None => self.join(),
        }
    }

    fn join(&self) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        out.push('{');
        for (i, member) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&self.source[member.name_text.clone()]);
            out.push(':');
            out.push_str(self.value_text(member));
        }
        out.push('}');
        out
    }

    /// The object as a [`Value`] (parsed now; [`RawObject::parse`] checked that it parses).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }
}

/// The top-level members of a document serde_json has read through, and whether it holds
/// anything that reading through does not check as a [`Value`] parse would.
struct Cut {
    /// The byte ranges of each member's name (quotes included) and value.
    members: Vec<(Range<usize>, Range<usize>)>,
    /// A `\u` escape (a lone surrogate?), a number with an exponent or of many digits (out of
    /// range?), or deep nesting (past serde_json's limit of 128?).
    needs_check: bool,
}

/// The member name serde_json's `Value` parse reads as "a raw value follows" (its `raw_value`
/// feature's private token).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Nesting deeper than this has the document checked in full.
const DEEP: usize = 100;

/// Cuts `json` into its top-level members (see [`Cut`]); `None` when it is not an object.
fn top_level_members(json: &[u8]) -> Option<Cut> {
    let mut scan = Scanner {
        json,
        needs_check: false,
    };
    let mut i = scan.skip_space(0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = scan.skip_space(i + 1);
    let mut members = Vec::new();
    if json.get(i) != Some(&b'}') {
        loop {
            let name_end = scan.skip_string(i)?;
            let name = i..name_end;
            i = scan.skip_space(name_end);
            if json.get(i) != Some(&b':') {
                return None;
            }
            let start = scan.skip_space(i + 1);
            let end = scan.skip_value(start)?;
            members.push((name, start..end));
            i = scan.skip_space(end);
            match json.get(i) {
                Some(b',') => i = scan.skip_space(i + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    Some(Cut {
        members,
        needs_check: scan.needs_check,
    })
}

struct Scanner<'a> {
    json: &'a [u8],
    needs_check: bool,
}

impl Scanner<'_> {
    fn skip_space(&self, mut i: usize) -> usize {
        while matches!(self.json.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }

    /// The end of the string that starts at `i` (after its closing quote).
    fn skip_string(&mut self, mut i: usize) -> Option<usize> {
        if self.json.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        loop {
            // To the next quote or backslash (SIMD: strings are most of a chat answer's bytes).
            i += memchr::memchr2(b'"', b'\\', self.json.get(i..)?)?;
            match self.json.get(i)? {
                b'\\' => {
                    if self.json.get(i + 1) == Some(&b'u') {
                        self.needs_check = true;
                    }
                    i += 2;
                }
                _ => return Some(i + 1),
            }
        }
    }

    /// The end of the number, `true`, `false` or `null` that starts at `i`.
    fn skip_scalar(&mut self, i: usize) -> Option<usize> {
        let mut j = i;
        let mut digits = 0usize;
        while let Some(&b) = self.json.get(j) {
            match b {
                b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' => break,
                b'0'..=b'9' => digits += 1,
                // In a number (`true` and `false` have no digit before their `e`).
                b'e' | b'E' if digits > 0 => self.needs_check = true,
                _ => {}
            }
            j += 1;
        }
        // An f64 ends near 1.8e308.
        if digits > 300 {
            self.needs_check = true;
        }
        (j > i).then_some(j)
    }

    /// The end of the value that starts at `i`.
    fn skip_value(&mut self, i: usize) -> Option<usize> {
        match self.json.get(i)? {
            b'"' => self.skip_string(i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    match self.json.get(j)? {
                        b'"' => {
                            j = self.skip_string(j)?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > DEEP {
                                self.needs_check = true;
                            }
                        }
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        b'0'..=b'9' | b'-' => {
                            j = self.skip_scalar(j)?;
                            continue;
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => self.skip_scalar(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_comes_back_as_the_value_it_was() {
        let text = r#"{"id":"c1","created":17,"model":"m","choices":[{"message":{"content":"caf\u00e9 \"q\""},"x":1.5e3}],"usage":{"n":1},"null":null}"#;
        let raw = RawObject::parse(text.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(raw.to_value(), value);
        assert_eq!(raw.get_str("id").as_deref(), Some("c1"));
        assert_eq!(raw.get_i64("created"), Some(17));
        assert_eq!(raw.get_str("created"), None);
        // Escapes and exponents have it read as serde_json reads it, members written anew.
        assert_eq!(
            raw.get("choices"),
            Some(r#"[{"message":{"content":"café \"q\""},"x":1500.0}]"#)
        );
        // Otherwise each member is the provider's text, spaces and all.
        let verbatim = r#"{"id":"c1", "choices":[ {"message":{"content":"café \"q\""},"x":1.5} ]}"#;
        let raw = RawObject::parse(verbatim.as_bytes()).unwrap();
        assert_eq!(
            raw.get("choices"),
            Some(r#"[ {"message":{"content":"café \"q\""},"x":1.5} ]"#)
        );
    }

    #[test]
    fn replacing_a_string_member_keeps_its_place() {
        let mut raw = RawObject::parse(br#"{"a":1, "model" : "small", "z":[]}"#).unwrap();
        raw.replace_str("model", "llamacpp/\"small\"");
        assert_eq!(raw.text(), r#"{"a":1,"model":"llamacpp/\"small\"","z":[]}"#);
        let mut not_string = RawObject::parse(br#"{"model":{"x":1}}"#).unwrap();
        not_string.replace_str("model", "y");
        assert_eq!(not_string.to_value(), json!({"model": {"x": 1}}));
        not_string.replace_str("absent", "y");
        assert_eq!(not_string.to_value(), json!({"model": {"x": 1}}));
    }

    #[test]
    fn a_repeated_name_keeps_its_first_place_and_last_value_as_serde_json_does() {
        let text = br#"{"a":1,"b":2,"a":3}"#;
        let raw = RawObject::parse(text).unwrap();
        let value: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(raw.text(), value.to_string());
    }

    #[test]
    fn what_is_not_an_object_is_refused_with_the_reason() {
        for (bytes, not_json) in [
            (&b"[1,2]"[..], false),
            (b"\"s\"", false),
            (b"null", false),
            (b"12", false),
            (b"{\"a\":", true),
            (b"{\"a\":1} trailing", true),
            (b"[1] trailing", true),
            // What a `Value` refuses, though skipping over it would not notice.
            (br#"{"a":"\ud800"}"#, true),
            (br#"{"a":[1e400]}"#, true),
            (b"\xff", true),
            (b"", true),
        ] {
            let _ = serde_json::from_slice::<Value>(bytes).map(|_| assert!(!not_json));
            match RawObject::parse(bytes) {
                Err(NotAnObject::NotJson(_)) => assert!(not_json, "{bytes:?}"),
                Err(NotAnObject::NotObject) => assert!(!not_json, "{bytes:?}"),
                Ok(o) => panic!("{bytes:?} parsed as {o:?}"),
            }
        }
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_refused_as_a_value_would_be() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(matches!(
            RawObject::parse(deep.as_bytes()),
            Err(NotAnObject::NotJson(_))
        ));
    }

    #[test]
    fn only_what_reading_through_would_miss_has_the_document_parsed_in_full() {
        let needs = |text: &str| top_level_members(text.as_bytes()).map(|c| c.needs_check);
        let answer = r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Earth"}}],"created":1795978407,"usage":{"prompt_tokens":31},"ok":true,"no":false,"x":null,"timings":{"prompt_ms":218.587,"n":-3}}"#;
        assert_eq!(needs(answer), Some(false));
        let recorded = r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Earth"}}],"created":1795978407,"model":"qwen2.5-coder-0.5b","system_fingerprint":"b1-0c1e570","object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":31,"total_tokens":33,"prompt_tokens_details":{"cached_tokens":0}},"id":"chatcmpl-XfzfdEPgLg698DN2rXItyFHD8XjA1QM5","timings":{"cache_n":0,"prompt_n":31,"prompt_ms":218.587,"prompt_per_token_ms":7.051193548387096,"prompt_per_second":141.81996184585543,"predicted_n":2,"predicted_ms":20.168,"predicted_per_token_ms":20.168,"predicted_per_second":49.583498611662044}}"#;
        assert_eq!(needs(recorded), Some(false));
        for suspicious in [
            r#"{"a":"caf\u00e9"}"#,
            r#"{"a":[1.5e3]}"#,
            r#"{"a":2E-7}"#,
            r#"{"\ud800":1}"#,
        ] {
            assert_eq!(needs(suspicious), Some(true), "{suspicious}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(DEEP + 1), "]".repeat(DEEP + 1));
        assert_eq!(needs(&deep), Some(true));
        let long = format!("{{\"a\":{}}}", "9".repeat(310));
        assert_eq!(needs(&long), Some(true));
        assert!(serde_json::from_str::<Value>(&long).is_err());
        assert!(
            RawObject::parse(long.as_bytes()).is_err(),
            "out of range as a Value"
        );
        assert_eq!(needs("[1]"), None);
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[\\x00-\\x1f\"\\\\/{}\\[\\],:\u{e9}\u{1f600}a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"\\\\{}\u{e9}]{0,4}", inner), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The members cut by the scanner are serde_json's, compact or pretty, and the object
        /// written back is the same value.
        #[test]
        fn the_scanner_cuts_the_members_serde_json_sees(
            members in proptest::collection::vec(("[a-z\"\\\\\u{e9}]{0,4}", arb_json()), 0..6),
            pretty in proptest::bool::ANY,
        ) {
            let object = Value::Object(members.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                object.to_string()
            };
            let raw = RawObject::parse(text.as_bytes()).unwrap();
            proptest::prop_assert_eq!(raw.to_value(), object.clone());
            for (name, value) in object.as_object().unwrap() {
                let got: Value = serde_json::from_str(raw.get(name).unwrap()).unwrap();
                proptest::prop_assert_eq!(&got, value);
            }
        }
    }
}
