//! A provider's JSON object answer passed through as text: parsed at its top level only.
//!
//! A chat completion answer goes through the stack unchanged but for its `model` (the stack's id
//! instead of the provider's), and out again as JSON: to the caller and to the inference store.
//! Parsed into a [`Value`] tree and serialized twice, it cost a third of a replayed request's
//! instructions. Here the answer is checked to be JSON (all of it) and split into its top-level
//! members, each kept as the provider's text ([`RawValue`]); a member is parsed only when asked
//! for, and the object is written back by joining the members. In-process callers that want a
//! [`Value`] parse it once ([`RawObject::to_value`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON object, as its top-level members' names and texts (see the module docs).
#[derive(Clone)]
pub struct RawObject {
    /// In the order they came; a repeated name keeps its first place and its last value, as
    /// `serde_json`'s order-preserving map does.
    members: Vec<(String, Box<RawValue>)>,
    /// The object's text, written once after the last change (the caller and the inference
    /// store both want it).
    text: std::sync::OnceLock<String>,
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
    /// splits the object into its members.
    pub fn parse(bytes: &[u8]) -> Result<Self, NotAnObject> {
        // First the whole document, without building it: members kept as text are only skipped
        // over, which lets through what a `Value` refuses (a lone surrogate escape, a number out
        // of range, nesting past serde_json's limit) and would break every later parse of it.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde::de::DeserializeSeed::deserialize(Checked, &mut de)
            .and_then(|()| de.end())
            .map_err(NotAnObject::NotJson)?;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let members = match de.deserialize_any(MembersVisitor) {
            Ok(Some(members)) => members,
            Ok(None) => return Err(NotAnObject::NotObject),
            Err(e) if e.is_data() => return Err(NotAnObject::NotObject),
            Err(e) => return Err(NotAnObject::NotJson(e)),
        };
        Ok(RawObject {
            members,
            text: std::sync::OnceLock::new(),
        })
    }

    /// The text of member `name`, as the provider wrote it.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Member `name` when it is a string.
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        let raw = self.get(name)?;
        serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
    }

    /// Member `name` when it is an integer that fits an `i64`.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        serde_json::from_str::<i64>(self.get(name)?.get()).ok()
    }

    /// Replaces member `name` with the string `value`, when the member exists and is a string.
    pub fn replace_str(&mut self, name: &str, value: &str) {
        let Some((_, raw)) = self.members.iter_mut().find(|(n, _)| n == name) else {
            return;
        };
        if !raw.get().starts_with('"') {
            return;
        }
        if let Ok(text) = serde_json::to_string(value)
            && let Ok(new) = RawValue::from_string(text)
        {
            *raw = new;
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
        let len: usize = self
            .members
            .iter()
            .map(|(n, v)| n.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, (name, value)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, name);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        // Names written by serde_json, values taken from a `str`: UTF-8 throughout.
        String::from_utf8(out).unwrap_or_default()
    }

    /// The object as a [`Value`] (parsed now; [`RawObject::parse`] checked that it parses).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }
}

/// Checks a JSON value the way parsing it into a [`Value`] does (escapes, numbers, nesting
/// depth), keeping nothing.
struct Checked;

impl<'de> serde::de::DeserializeSeed<'de> for Checked {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Checked)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Checked)?.is_some() {
            map.next_value_seed(Checked)?;
        }
        Ok(())
    }
}

/// Visits a JSON value: `Some(members)` for an object, `None` for anything else.
struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Option<Vec<(String, Box<RawValue>)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(String, Box<RawValue>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
            match members.iter_mut().find(|(n, _)| *n == name) {
                Some((_, old)) => *old = value,
                None => members.push((name, value)),
            }
        }
        Ok(Some(members))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
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
        assert_eq!(
            raw.get("choices").map(RawValue::get),
            Some(r#"[{"message":{"content":"caf\u00e9 \"q\""},"x":1.5e3}]"#)
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
}
