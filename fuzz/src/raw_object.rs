//! `raw_object`: a provider's answer passed through as text ([`stack::providers::RawObject`]).
//!
//! Input: the bytes of an answer.
//!
//! Checked: `RawObject::parse` accepts exactly what `serde_json` parses into an object (the same
//! strictness: escapes, surrogates, numbers in range, nesting depth, UTF-8); what it accepts
//! reads back as the same value, member by member and whole; replacing a string member changes
//! that member only; never a panic.

use serde_json::Value;
use stack::providers::{NotAnObject, RawObject};

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let value = serde_json::from_slice::<Value>(data);
    let raw = RawObject::parse(data);
    match (&value, raw) {
        (Ok(Value::Object(members)), Ok(mut raw)) => {
            assert_eq!(
                raw.to_value(),
                Value::Object(members.clone()),
                "read back whole"
            );
            for (name, member) in members {
                let text = raw
                    .get(name)
                    .unwrap_or_else(|| panic!("member {name:?} lost"));
                let got: Value = serde_json::from_str(text).expect("a member's text parses");
                assert_eq!(&got, member, "member {name:?}");
            }
            if let Some((name, _)) = members.iter().find(|(_, v)| v.is_string()) {
                raw.replace_str(name, "replaced \"x\"");
                let mut want = members.clone();
                want.insert(name.clone(), Value::from("replaced \"x\""));
                assert_eq!(raw.to_value(), Value::Object(want), "one member replaced");
            }
        }
        (Ok(Value::Object(_)), Err(e)) => panic!("serde_json reads an object, RawObject: {e}"),
        (Ok(_), Ok(_)) => panic!("not an object, yet accepted"),
        (Err(e), Ok(_)) => panic!("serde_json refuses it ({e}), RawObject accepts it"),
        (Ok(_), Err(NotAnObject::NotObject)) | (Err(_), Err(NotAnObject::NotJson(_))) => {}
        (Ok(_), Err(e)) => panic!("JSON, not an object, yet: {e}"),
        (Err(e), Err(NotAnObject::NotObject)) => {
            panic!("not JSON ({e}), yet called JSON that is not an object")
        }
    }
}
