//! How a recording is laid out as text: indented for its first levels, one line per item below.
//!
//! A blob is read in reviews and diffs. Fully pretty-printed, a 4 MB conversation took 5.6 MB
//! (every message field on its own indented line, 1.40x the bytes exchanged) and a changed
//! message showed as scattered one-field hunks. Here the recording's structure, the request's
//! fields and lists (`messages`, `tools`, stream `events`) are indented, and every item deeper
//! than [`PRETTY_LEVELS`] is written on one line: one message, one tool, one stream event a
//! line, which is what a reader scans and what `git diff` shows whole. Loading does not care
//! about layout: older fully indented blobs read the same.
//!
//! Our own `serde_json` formatter because `serde_json` offers only all-compact or all-pretty.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Containers nested up to this depth are indented (the recording is depth 1, its `request` 2,
/// the request's `canonical_body` 3, its `messages` 4); deeper ones are written on one line.
pub const PRETTY_LEVELS: usize = 4;

const INDENT: &[u8] = b"  ";

/// The text of `value` in the recording layout (see the module docs).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    to_vec_at(value, 0)
}

/// The text of `value` as the recording layout writes it `depth` levels deep (a member of the
/// recording is 1 deep), for splicing into the recording's text as a raw value.
pub fn to_vec_at<T: Serialize + ?Sized>(value: &T, depth: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    let layout = Layout {
        depth,
        has_value: false,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, layout);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// Where the value of the top-level member `name` (an object or `null`) starts and ends in
/// `text` written by [`to_vec`]: a top-level member begins a line indented once, and an object
/// there ends with the first line that closes a container indented once (a JSON string holds no
/// raw line break, so each one is layout). `name` must need no escape.
pub fn member_value_span(text: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    const CLOSE: &[u8] = b"\n  }";
    let member = format!("\n  \"{name}\": ");
    let start = memchr::memmem::find(text, member.as_bytes())? + member.len();
    let rest = text.get(start..)?;
    if rest.starts_with(b"null") {
        return Some(start..start + 4);
    }
    if !rest.starts_with(b"{") {
        return None;
    }
    Some(start..start + memchr::memmem::find(rest, CLOSE)? + CLOSE.len())
}

/// `serde_json`'s pretty formatter down to [`PRETTY_LEVELS`], its compact one below.
#[derive(Default)]
struct Layout {
    depth: usize,
    has_value: bool,
}

impl Layout {
    /// Whether the container being written (at `self.depth`) is indented.
    fn indented(&self) -> bool {
        self.depth <= PRETTY_LEVELS
    }

    fn indent<W: ?Sized + Write>(&self, writer: &mut W, depth: usize) -> io::Result<()> {
        for _ in 0..depth {
            writer.write_all(INDENT)?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        let indented = self.indented();
        self.depth -= 1;
        if indented && self.has_value {
            writer.write_all(b"\n")?;
            self.indent(writer, self.depth)?;
        }
        writer.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if self.indented() {
            writer.write_all(if first { b"\n" } else { b",\n" })?;
            self.indent(writer, self.depth)
        } else if first {
            Ok(())
        } else {
            writer.write_all(b",")
        }
    }
}

impl Formatter for Layout {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(if self.indented() { b": " } else { b":" })
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indents_the_first_levels_and_writes_deeper_items_on_one_line() {
        let v = json!({"request": {"canonical_body": {"messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "x": [1, {}]}
        ], "empty": [], "none": {}}}, "n": 1});
        let text = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{
  "request": {
    "canonical_body": {
      "messages": [
        {"role":"user","content":"a"},
        {"role":"assistant","content":"b","x":[1,{}]}
      ],
      "empty": [],
      "none": {}
    }
  },
  "n": 1
}"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn shallow_values_are_what_serde_json_pretty_prints() {
        let v = json!({"a": [1, 2], "b": {"c": null, "d": []}, "e": "x"});
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
    }
}
