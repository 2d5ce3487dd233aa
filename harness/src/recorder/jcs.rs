//! RFC 8785 (JSON Canonicalization Scheme) text of a `serde_json::Value`: the form every
//! request key is hashed from ([`super::canonical`]).
//!
//! Written here rather than taken from `serde_jcs`, which the keys were first made with: that
//! crate routes every token through a boxed writer and parses every object key back to sort it,
//! which made canonicalization the largest part of a replayed request (callgrind, issue 13), and
//! a 4 MB conversation took 100 ms to key. `serde_json_canonicalizer` and `canon-json` were
//! measured too: 10% and 35% faster than `serde_jcs`, against 9x for this walker, and
//! `canon-json` writes integers above 2^53 differently, which would move existing keys. The
//! walker writes exactly `serde_jcs`'s bytes (a property test checks it against the crate):
//!
//! - strings as `serde_json` escapes them (`\"`, `\\`, `\b \f \n \r \t`, other controls as
//!   lowercase `\u00xx`, everything else literal), which is what RFC 8785 asks for;
//! - every number as the IEEE double it denotes, in ECMAScript's shortest form (`ryu-js`):
//!   `1.0` is `1`, `1e21` is `1e+21`, integers beyond 2^53 are rounded like JavaScript does;
//! - object members sorted by the UTF-16 code units of their names.

use serde_json::Value;

/// The RFC 8785 text of `value` (the key uses [`write_value`] into its own buffer).
#[cfg(test)]
pub fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    into_string(out)
}

/// Appends the RFC 8785 text of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) if is_in_order(members) => write_members(out, members.iter()),
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| name_order(a.0, b.0));
            write_members(out, sorted.into_iter());
        }
    }
}

/// Appends an object of `members`, in the order given.
fn write_members<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = (&'a String, &'a Value)>) {
    out.push(b'{');
    for (i, (name, member)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, member);
    }
    out.push(b'}');
}

/// Whether an object's members are in RFC 8785 order (by the UTF-16 code units of their names).
fn is_in_order(members: &serde_json::Map<String, Value>) -> bool {
    members.keys().is_sorted_by(|a, b| name_order(a, b).is_le())
}

/// Puts `value` in its RFC 8785 form in place: the members of every object in canonical order
/// (by the UTF-16 code units of their names; `serde_json`'s `preserve_order` keeps insertion
/// order) and every number as the double JCS writes (`1.0` becomes `1`), so that it serializes
/// like [`to_string`]'s text parsed back, without the round trip through text.
pub fn canonicalize_in_place(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let exact_integer = n
                .as_i64()
                .is_some_and(|i| i.unsigned_abs() <= MAX_EXACT_INTEGER)
                || n.as_u64().is_some_and(|u| u <= MAX_EXACT_INTEGER);
            if !exact_integer {
                let mut text = Vec::with_capacity(24);
                write_number(&mut text, n);
                if let Ok(canonical) = into_string(text).parse::<serde_json::Number>() {
                    *n = canonical;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize_in_place),
        Value::Object(members) => {
            members.values_mut().for_each(canonicalize_in_place);
            if is_in_order(members) {
                return;
            }
            if members.keys().all(|name| utf8_order_is_utf16_order(name)) {
                // In place: the map keeps its entries' hashes (no rebuild through a new map,
                // which was a tenth of recording a 4 MB conversation).
                members.sort_keys();
            } else {
                let mut sorted: Vec<(String, Value)> =
                    std::mem::take(members).into_iter().collect();
                sorted.sort_unstable_by(|a, b| name_order(&a.0, &b.0));
                *members = sorted.into_iter().collect();
            }
        }
        _ => {}
    }
}

/// RFC 8785's order of member names: by their UTF-16 code units (by their bytes, the same
/// order, when neither holds a character where the two differ: much cheaper).
fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    if utf8_order_is_utf16_order(a) && utf8_order_is_utf16_order(b) {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// Whether ordering `name` by its UTF-8 bytes (`str`'s order) agrees with ordering it by its
/// UTF-16 code units (JCS's): the two differ only between characters from U+E000 to U+FFFF and
/// those above U+FFFF, whose UTF-8 forms start with a byte of 0xEE or more.
fn utf8_order_is_utf16_order(name: &str) -> bool {
    !name.bytes().any(|b| b >= 0xEE)
}

/// Integers up to 2^53 are doubles exactly: JCS writes them as they are.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most strings need no escape: copied whole, after a check the compiler vectorizes
    // (serde_json looks each byte up in a table, which was most of keying a large body).
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a str to a Vec cannot fail; serde_json's escaping is RFC 8785's.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Whether a JSON string needs an escape: a control character, a quote or a backslash.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut chunks = bytes.chunks_exact(16);
    // No early exit within a chunk, so that each chunk is one vector comparison.
    chunks
        .by_ref()
        .any(|chunk| chunk.iter().fold(false, |any, &b| any | escaped(b)))
        || chunks.remainder().iter().any(|&b| escaped(b))
}

/// Appends `n` as the double it denotes, in ECMAScript's form.
fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) {
    // Without `arbitrary_precision` every Number is an i64, u64 or finite f64, so this is always
    // Some; JCS reads integers as doubles too (`as f64`, as serde_jcs does).
    let f = n.as_f64().unwrap_or(0.0);
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
}

/// `out` holds only what the writers above put there: UTF-8 text.
pub fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            prop_oneof![
                Just(1e21),
                Just(1e-7),
                Just(0.1),
                Just(-0.0),
                Just(5e-324),
                Just(9007199254740993.0)
            ]
            .prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}\u{e000}\u{ffff}\u{10000}\u{1f600}a-z]{0,8}"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        "[a-zA-Z_\u{e9}\u{e000}\u{ffff}\u{10000}\u{1f600}\\x00-\\x1f]{0,6}",
                        inner
                    ),
                    0..6
                )
                .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn writes_what_serde_jcs_writes(value in arb_json()) {
            prop_assert_eq!(to_string(&value), serde_jcs::to_string(&value).unwrap());
        }

        #[test]
        fn in_place_is_the_text_parsed_back(value in arb_json()) {
            let mut in_place = value.clone();
            canonicalize_in_place(&mut in_place);
            let parsed: Value = serde_json::from_str(&to_string(&value)).unwrap();
            prop_assert_eq!(serde_json::to_string(&in_place).unwrap(), serde_json::to_string(&parsed).unwrap());
        }
    }

    #[test]
    fn sorts_by_utf16_code_units_and_writes_numbers_as_ecmascript_does() {
        // U+10000 is a surrogate pair (0xD800...) in UTF-16, so it sorts before U+E000, unlike in
        // UTF-8 or by code point.
        let v = json!({"\u{e000}": 1, "\u{10000}": 2, "b": [1.0, 1e21, 0.1, 12345678901234567890u64], "a": "\u{1}\"\n"});
        assert_eq!(
            to_string(&v),
            "{\"a\":\"\\u0001\\\"\\n\",\"b\":[1,1e+21,0.1,12345678901234567000],\"\u{10000}\":2,\"\u{e000}\":1}"
        );
    }
}
