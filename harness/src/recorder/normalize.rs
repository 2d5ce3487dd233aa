//! Declarative normalization rules: how volatile parts of a request body are neutralized before
//! the body is hashed. Rules never touch what is sent to the provider, only the request key.
//!
//! A rule drops or replaces the value at a JSON path (`$.a.b[*].c`; `*` matches any key or array
//! element), or rewrites every string matching a regex. A rule may be limited to requests whose
//! path ends with `endpoint`, whose host contains `host`, and/or whose body has a given value at
//! a path (`when = { path = "$.jsonrpc", equals = "2.0" }`: a protocol, wherever it is served).
//!
//! The built-in rules ([`Rules::llm_defaults`]) include the JSON-RPC 2.0 ones that make MCP
//! traffic replayable: a message's `id`, its `params._meta` (progress tokens, trace context) and
//! the `params.protocolVersion` a client offers never enter the key.
//!
//! Projects add rules in `<recordings dir>/normalization.toml` (see `docs/recordings.md`):
//!
//! ```toml
//! defaults = true            # keep the built-in LLM rules (default)
//! [[rule]]
//! drop = "$.user"
//! [[rule]]
//! replace = "$.metadata.run_id"
//! with = "<run-id>"
//! [[rule]]
//! pattern = "call_[A-Za-z0-9]{24}"
//! replacement = "call_<id>"
//! endpoint = "/chat/completions"
//! ```

use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::error::RecorderError;
use super::redact;

/// A JSON path such as `$.messages[*].tool_calls[*].id`: an RFC 9535 JSONPath query
/// ([`serde_json_path`]) naming the values a rule touches.
///
/// Written as in RFC 9535 (`$.a.b[*].c`, `$.a['key with spaces']`, `$.items[0]`); the leading
/// `$` may be left out (`a.b.*.c` is `$.a.b.*.c`). A rule changes object members only: a path
/// that ends at an array element (`$.items[0]`, `$.items[*]`) touches nothing. Two things the
/// RFC allows are refused, since a rule should name the places it changes: the root alone (`$`,
/// except for `drop_nulls`) and the descendant segment (`$..id`). Unlike the path syntax before
/// RFC 9535, `[0]` is an array index only (an object member named `0` is `['0']`) and a name in
/// brackets is quoted (`['a']`).
#[derive(Clone, Debug)]
pub struct JsonPath {
    query: serde_json_path::JsonPath,
    /// The query's normalized text (what [`PartialEq`] compares).
    text: String,
}

impl PartialEq for JsonPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl JsonPath {
    /// Parses `$.a.b[*].c` or `a.b.*.c` (see the type's documentation).
    pub fn parse(path: &str) -> Result<Self, RecorderError> {
        let bad = |reason: String| RecorderError::InvalidRule {
            rule: path.to_owned(),
            reason,
        };
        let trimmed = path.trim();
        let rest = trimmed.strip_prefix('$').unwrap_or(trimmed);
        if rest.strip_prefix('.').unwrap_or(rest).is_empty() {
            return Err(bad(
                "the path is empty; write e.g. $.stream_options".to_owned()
            ));
        }
        let (canonical, descendant) = canonical_wildcards(trimmed);
        if descendant {
            return Err(bad(
                "a descendant segment (`..`) is not allowed; name each level (two dots in a \
                 row?)"
                    .to_owned(),
            ));
        }
        Self::parse_query(&canonical).map_err(bad)
    }

    /// The whole body, `$` (only `drop_nulls` takes it).
    fn root() -> Self {
        Self {
            query: serde_json_path::JsonPath::default(),
            text: "$".to_owned(),
        }
    }

    /// `text` as an RFC 9535 query, with `$.` put in front when it has no `$`.
    fn parse_query(text: &str) -> Result<Self, String> {
        let full = if text.starts_with('$') {
            text.to_owned()
        } else if text.starts_with('[') {
            format!("${text}")
        } else {
            format!("$.{text}")
        };
        let query = serde_json_path::JsonPath::parse(&full).map_err(|e| e.to_string())?;
        let text = query.to_string();
        Ok(Self { query, text })
    }

    fn is_root(&self) -> bool {
        self.text == "$"
    }

    /// The value at this path when it names exactly one value, e.g. `$.jsonrpc`.
    fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.query.query(value).exactly_one().ok()
    }

    /// Calls `action` with the object and the key of every object member the path selects.
    fn apply(&self, value: &mut Value, action: &dyn Fn(&mut serde_json::Map<String, Value>, &str)) {
        // The places first (the query borrows the body), then the changes; a change only
        // touches object members, so array positions stay valid, and a place gone missing (a
        // member removed under another) is skipped.
        let places: Vec<Place> = self
            .query
            .query_located(value)
            .locations()
            .filter_map(Place::of)
            .collect();
        for place in places {
            if let Some(Value::Object(map)) = place.parent(value) {
                action(map, &place.key);
            }
        }
    }
}

/// An object member a path selected: the way to its object, and its key.
struct Place {
    parent: Vec<Step>,
    key: String,
}

/// One step from a value to one of its children.
enum Step {
    Key(String),
    Index(usize),
}

impl Place {
    /// The place of a located node that is an object member (`None` for the root or an array
    /// element).
    fn of(location: &serde_json_path::NormalizedPath<'_>) -> Option<Place> {
        use serde_json_path::PathElement;
        let key = location.last()?.as_name()?.to_owned();
        Some(Place {
            key,
            parent: location
                .iter()
                .take(location.len() - 1)
                .map(|element| match element {
                    PathElement::Name(name) => Step::Key((*name).to_owned()),
                    PathElement::Index(index) => Step::Index(*index),
                })
                .collect(),
        })
    }

    fn parent<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        self.parent.iter().try_fold(value, |v, step| match step {
            Step::Key(key) => v.get_mut(key.as_str()),
            Step::Index(index) => v.get_mut(*index),
        })
    }
}

/// The query text with its wildcard shorthand `.*` written `[*]` (so that both spellings of a
/// path compare equal), and whether it has a descendant segment (`..`), outside quoted names.
fn canonical_wildcards(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + 2);
    let (mut quote, mut escaped, mut descendant) = (None, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '.' && chars.peek() == Some(&'.') => descendant = true,
            None if c == '.' && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("[*]");
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    (out, descendant)
}

/// What a rule does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Remove the value at the path.
    Drop(JsonPath),
    /// Remove the value at the path when it equals this one (an explicit default:
    /// `"stream": false`, `"encoding_format": "float"`).
    DropIfEquals(JsonPath, Value),
    /// Remove the `null` members of the object(s) at the path (`$` for the top level): a field
    /// sent as `null` means the same as a field not sent.
    DropNulls(JsonPath),
    /// Make a string at the path a one-element list (`"input": "x"` means `["x"]`).
    AsList(JsonPath),
    /// Replace the value at the path (when present) with a fixed value.
    Replace(JsonPath, Value),
    /// Rewrite every match of the regex in every string of the body.
    Pattern(Regex, String),
}

/// One normalization rule and the requests it applies to.
#[derive(Clone, Debug)]
pub struct Rule {
    /// What the rule does.
    pub action: Action,
    /// Apply only when the request path ends with this.
    pub endpoint: Option<String>,
    /// Apply only when the request host contains this.
    pub host: Option<String>,
    /// Apply only when the body has this value at this path.
    pub when: Option<(JsonPath, Value)>,
}

impl Rule {
    /// A rule that drops `path`.
    pub fn drop(path: &str) -> Result<Self, RecorderError> {
        Ok(Rule {
            action: Action::Drop(JsonPath::parse(path)?),
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// A rule that drops the value at `path` when it equals `default` (an explicit default).
    pub fn drop_if_equals(path: &str, default: Value) -> Result<Self, RecorderError> {
        Ok(Rule {
            action: Action::DropIfEquals(JsonPath::parse(path)?, default),
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// A rule that drops the `null` members of the object(s) at `path` (`$`: the top level).
    pub fn drop_nulls(path: &str) -> Result<Self, RecorderError> {
        let action = if path.trim() == "$" {
            Action::DropNulls(JsonPath::root())
        } else {
            Action::DropNulls(JsonPath::parse(path)?)
        };
        Ok(Rule {
            action,
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// A rule that makes a string at `path` a one-element list.
    pub fn as_list(path: &str) -> Result<Self, RecorderError> {
        Ok(Rule {
            action: Action::AsList(JsonPath::parse(path)?),
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// A rule that replaces the value at `path` with `with`.
    pub fn replace(path: &str, with: Value) -> Result<Self, RecorderError> {
        Ok(Rule {
            action: Action::Replace(JsonPath::parse(path)?, with),
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// A rule that rewrites every match of `pattern` in strings with `replacement`
    /// (`$1`-style groups allowed).
    pub fn pattern(pattern: &str, replacement: &str) -> Result<Self, RecorderError> {
        let re = Regex::new(pattern).map_err(|e| RecorderError::InvalidRule {
            rule: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Rule {
            action: Action::Pattern(re, replacement.to_owned()),
            endpoint: None,
            host: None,
            when: None,
        })
    }

    /// Limits the rule to paths ending with `endpoint`.
    pub fn on_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.to_owned());
        self
    }

    /// Limits the rule to hosts containing `host`.
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    /// Limits the rule to bodies whose value at `path` equals `value` (e.g. `$.jsonrpc` = `"2.0"`).
    pub fn when_equals(mut self, path: &str, value: Value) -> Result<Self, RecorderError> {
        self.when = Some((JsonPath::parse(path)?, value));
        Ok(self)
    }

    fn applies(&self, host: &str, path: &str, body: &Value) -> bool {
        self.endpoint.as_deref().is_none_or(|e| path.ends_with(e))
            && self.host.as_deref().is_none_or(|h| host.contains(h))
            && self
                .when
                .as_ref()
                .is_none_or(|(at, value)| at.get(body) == Some(value))
    }

    fn apply(&self, body: &mut Value) {
        match &self.action {
            Action::Drop(path) => path.apply(body, &|map, key| {
                map.shift_remove(key);
            }),
            Action::DropIfEquals(path, default) => path.apply(body, &|map, key| {
                if map.get(key) == Some(default) {
                    map.shift_remove(key);
                }
            }),
            Action::DropNulls(path) => {
                let strip = |v: &mut Value| {
                    if let Value::Object(map) = v {
                        map.retain(|_, child| !child.is_null());
                    }
                };
                if path.is_root() {
                    strip(body);
                } else {
                    path.apply(body, &|map, key| {
                        if let Some(v) = map.get_mut(key) {
                            strip(v);
                        }
                    });
                }
            }
            Action::AsList(path) => path.apply(body, &|map, key| {
                if let Some(v) = map.get_mut(key)
                    && v.is_string()
                {
                    *v = Value::Array(vec![v.take()]);
                }
            }),
            Action::Replace(path, with) => path.apply(body, &|map, key| {
                if let Some(v) = map.get_mut(key) {
                    *v = with.clone();
                }
            }),
            Action::Pattern(re, replacement) => rewrite_strings(body, re, replacement),
        }
    }
}

fn rewrite_strings(v: &mut Value, re: &Regex, replacement: &str) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(new) = re.replace_all(s, replacement) {
                *s = new;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| rewrite_strings(i, re, replacement)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| rewrite_strings(i, re, replacement)),
        _ => {}
    }
}

/// The ordered set of rules applied to every request body before hashing.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default = "yes")]
    defaults: bool,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenSpec {
    path: String,
    equals: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    when: Option<WhenSpec>,
    drop: Option<String>,
    /// With `drop`: only when the value equals this.
    equals: Option<toml::Value>,
    drop_nulls: Option<String>,
    as_list: Option<String>,
    replace: Option<String>,
    with: Option<toml::Value>,
    pattern: Option<String>,
    replacement: Option<String>,
    endpoint: Option<String>,
    host: Option<String>,
}

impl Rules {
    /// No rules at all.
    pub fn none() -> Self {
        Rules::default()
    }

    /// The built-in rules for OpenAI-compatible LLM providers:
    /// - `stream_options` is dropped for hosts that ignore it (Bedrock), so a request hashes the
    ///   same whichever way the caller sets it;
    /// - `project_id` (top level and in `extra_body`) is dropped: it comes from the provider's
    ///   credentials and differs between a recording machine and CI;
    /// - every JSON field named like a secret (`api_key`, `token`, `password`, `secret`,
    ///   `authorization`, ...) is replaced by a placeholder, so real and dummy credentials hash
    ///   the same (this one is built into the canonical form and cannot be switched off);
    /// - JSON-RPC 2.0 bodies (MCP): `id` is dropped (clients number their messages), so is
    ///   `params._meta` (progress tokens, trace context), and the `params.protocolVersion` a
    ///   client offers at `initialize` is replaced by `<protocol-version>` and its
    ///   `params.clientInfo.version` by `<client-version>`, so upgrading the SDK or the client
    ///   does not orphan every recording. Session ids travel in headers, which are never keyed;
    /// - requests that mean the same hash the same ([`Rules::same_meaning`]): on the OpenAI
    ///   endpoints, top-level `null` members are dropped (`"stop": null`), so are explicit
    ///   defaults (`"stream": false`; on embeddings `"encoding_format": "float"`, which the
    ///   OpenAI SDKs send unasked), and an embeddings `input` string is a one-element list.
    pub fn llm_defaults() -> Self {
        let mut rules = Self::llm_defaults_v1();
        rules.rules.extend(Self::same_meaning().rules);
        rules
    }

    /// The rules that make requests that mean the same hash the same (part of
    /// [`Rules::llm_defaults`]).
    pub fn same_meaning() -> Self {
        let openai = [
            "/chat/completions",
            "/completions",
            "/embeddings",
            "/responses",
        ];
        let mut rules = Vec::new();
        for endpoint in openai {
            rules.push(Rule::drop_nulls("$").map(|r| r.on_endpoint(endpoint)));
            rules.push(
                Rule::drop_if_equals("$.stream", Value::Bool(false))
                    .map(|r| r.on_endpoint(endpoint)),
            );
        }
        rules.push(
            Rule::drop_if_equals("$.encoding_format", Value::from("float"))
                .map(|r| r.on_endpoint("/embeddings")),
        );
        rules.push(Rule::as_list("$.input").map(|r| r.on_endpoint("/embeddings")));
        Rules {
            rules: rules.into_iter().filter_map(Result::ok).collect(),
        }
    }

    /// The built-in rules as they were before [`Rules::same_meaning`] joined them: what
    /// `recordings rekey` checks a blob's key against before giving it its key under the current
    /// rules.
    pub fn llm_defaults_v1() -> Self {
        let jsonrpc = |rule: Result<Rule, RecorderError>| {
            rule.and_then(|r| r.when_equals("$.jsonrpc", Value::from("2.0")))
        };
        let rules = [
            Rule::drop("$.stream_options").map(|r| r.on_host("bedrock")),
            Rule::drop("$.project_id"),
            Rule::drop("$.extra_body.project_id"),
            jsonrpc(Rule::drop("$.id")),
            jsonrpc(Rule::drop("$.params._meta")),
            jsonrpc(Rule::replace(
                "$.params.protocolVersion",
                Value::from("<protocol-version>"),
            )),
            jsonrpc(Rule::replace(
                "$.params.clientInfo.version",
                Value::from("<client-version>"),
            )),
        ];
        Rules {
            rules: rules.into_iter().filter_map(Result::ok).collect(),
        }
    }

    /// Appends a rule.
    pub fn with(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Parses a `normalization.toml` file's text (see the module docs).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, RecorderError> {
        Self::from_toml_on(text, origin, Rules::llm_defaults)
    }

    fn from_toml_on(
        text: &str,
        origin: &str,
        defaults: fn() -> Rules,
    ) -> Result<Self, RecorderError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RecorderError::InvalidRule {
            rule: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let mut rules = if file.defaults {
            defaults()
        } else {
            Rules::none()
        };
        for (i, spec) in file.rule.into_iter().enumerate() {
            let where_ = format!("{origin} rule #{}", i + 1);
            let bad = |reason: &str| RecorderError::InvalidRule {
                rule: where_.clone(),
                reason: reason.into(),
            };
            let single = [
                spec.drop.is_some(),
                spec.replace.is_some(),
                spec.pattern.is_some(),
                spec.drop_nulls.is_some(),
                spec.as_list.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count()
                == 1;
            if !single {
                return Err(bad(
                    "write exactly one of `drop`, `replace`, `pattern`, `drop_nulls` or `as_list`",
                ));
            }
            if spec.equals.is_some() && spec.drop.is_none() {
                return Err(bad("`equals` goes with `drop`"));
            }
            let mut rule = match (&spec.drop, &spec.replace, &spec.pattern) {
                (Some(p), None, None) => match &spec.equals {
                    Some(equals) => Rule::drop_if_equals(
                        p,
                        serde_json::to_value(equals).map_err(|e| bad(&e.to_string()))?,
                    )?,
                    None => Rule::drop(p)?,
                },
                _ if spec.drop_nulls.is_some() => {
                    Rule::drop_nulls(spec.drop_nulls.as_deref().unwrap_or("$"))?
                }
                _ if spec.as_list.is_some() => {
                    Rule::as_list(spec.as_list.as_deref().unwrap_or(""))?
                }
                (None, Some(p), None) => {
                    let with = spec
                        .with
                        .clone()
                        .ok_or_else(|| bad("`replace` needs `with`"))?;
                    let with = serde_json::to_value(with).map_err(|e| bad(&e.to_string()))?;
                    Rule::replace(p, with)?
                }
                (None, None, Some(p)) => {
                    let r = spec
                        .replacement
                        .as_deref()
                        .ok_or_else(|| bad("`pattern` needs `replacement`"))?;
                    Rule::pattern(p, r)?
                }
                _ => {
                    return Err(bad(
                        "write exactly one of `drop`, `replace`, `pattern`, `drop_nulls` or `as_list`",
                    ));
                }
            };
            rule.endpoint = spec.endpoint;
            rule.host = spec.host;
            if let Some(when) = spec.when {
                let equals = serde_json::to_value(when.equals).map_err(|e| bad(&e.to_string()))?;
                rule = rule.when_equals(&when.path, equals)?;
            }
            rules.rules.push(rule);
        }
        Ok(rules)
    }

    /// The defaults plus the rules of `<dir>/normalization.toml` when that file exists.
    pub fn for_recordings_dir(dir: &Path) -> Result<Self, RecorderError> {
        Self::for_recordings_dir_with(dir, Rules::llm_defaults)
    }

    /// [`Rules::for_recordings_dir`] with the version-1 defaults ([`Rules::llm_defaults_v1`]).
    pub fn for_recordings_dir_v1(dir: &Path) -> Result<Self, RecorderError> {
        Self::for_recordings_dir_with(dir, Rules::llm_defaults_v1)
    }

    /// `defaults` (a profile's rule set, [`Profile::rules`](crate::profile::Profile::rules))
    /// plus the rules of `<dir>/normalization.toml` when that file exists.
    pub fn for_recordings_dir_with(
        dir: &Path,
        defaults: fn() -> Rules,
    ) -> Result<Self, RecorderError> {
        let path = dir.join("normalization.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Rules::from_toml_on(&text, &path.display().to_string(), defaults),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(defaults()),
            Err(e) => Err(RecorderError::io(path, e)),
        }
    }

    /// Normalizes a request body for hashing.
    pub fn apply(&self, host: &str, path: &str, body: &mut Value) {
        for rule in &self.rules {
            if rule.applies(host, path, body) {
                rule.apply(body);
            }
        }
        redact::redact_value(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_parse_in_both_notations() {
        assert_eq!(
            JsonPath::parse("$.a.b[*].c").unwrap(),
            JsonPath::parse("a.b.*.c").unwrap()
        );
        assert!(JsonPath::parse("$").is_err());
        assert!(JsonPath::parse("a..b").is_err());
        assert!(JsonPath::parse("a[*").is_err());
    }

    #[test]
    fn drop_replace_and_pattern_apply_where_they_should() {
        let rules = Rules::none()
            .with(Rule::drop("$.messages[*].id").unwrap())
            .with(Rule::replace("$.metadata.run", json!("<run>")).unwrap())
            .with(
                Rule::pattern(r"call_[0-9a-z]+", "call_<id>")
                    .unwrap()
                    .on_endpoint("/chat/completions"),
            );
        let mut body = json!({
            "messages": [{"id": 1, "content": "see call_abc1"}, {"id": 2}],
            "metadata": {"run": 42},
        });
        rules.apply("api.openai.com", "/v1/chat/completions", &mut body);
        assert_eq!(
            body,
            json!({"messages": [{"content": "see call_<id>"}, {}], "metadata": {"run": "<run>"}})
        );
        let mut other = json!({"text": "call_abc1"});
        rules.apply("h", "/v1/embeddings", &mut other);
        assert_eq!(other, json!({"text": "call_abc1"}));
    }

    #[test]
    fn defaults_drop_stream_options_only_for_bedrock_and_mask_secrets() {
        let rules = Rules::llm_defaults();
        let mut a = json!({"stream_options": {"include_usage": true}, "api_key": "sk-1"});
        rules.apply(
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/chat/completions",
            &mut a,
        );
        assert_eq!(a, json!({"api_key": "<redacted>"}));
        let mut b = json!({"stream_options": {"include_usage": true}});
        rules.apply("127.0.0.1", "/v1/chat/completions", &mut b);
        assert!(b.get("stream_options").is_some());
    }

    #[test]
    fn jsonrpc_ids_meta_and_offered_protocol_version_stay_out_of_the_key() {
        let rules = Rules::llm_defaults();
        let mut a = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": "Paris"},
                       "_meta": {"progressToken": 3, "traceparent": "00-ab-cd-01"}}});
        let mut b = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": "Paris"}}});
        rules.apply("127.0.0.1", "/mcp", &mut a);
        rules.apply("h", "/other/path", &mut b);
        assert_eq!(a, b);
        let mut init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2026-07-28", "capabilities": {}}});
        rules.apply("h", "/mcp", &mut init);
        assert_eq!(init["params"]["protocolVersion"], "<protocol-version>");
        let mut hello = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"clientInfo": {"name": "c", "version": "1.2.3"}}});
        rules.apply("h", "/mcp", &mut hello);
        assert_eq!(
            hello["params"]["clientInfo"],
            json!({"name": "c", "version": "<client-version>"})
        );
        // Not JSON-RPC: an `id` or `_meta` of an ordinary body is left alone.
        let mut plain = json!({"id": 7, "params": {"_meta": 1}});
        rules.apply("h", "/mcp", &mut plain);
        assert_eq!(plain, json!({"id": 7, "params": {"_meta": 1}}));
    }

    #[test]
    fn toml_when_limits_a_rule_to_bodies_with_a_value() {
        let rules = Rules::from_toml(
            "defaults = false\n[[rule]]\ndrop = \"$.seq\"\nwhen = { path = \"$.kind\", equals = \"event\" }\n",
            "normalization.toml",
        )
        .unwrap();
        let mut event = json!({"kind": "event", "seq": 1});
        let mut other = json!({"kind": "other", "seq": 1});
        rules.apply("h", "/x", &mut event);
        rules.apply("h", "/x", &mut other);
        assert_eq!(
            (event, other),
            (json!({"kind": "event"}), json!({"kind": "other", "seq": 1}))
        );
    }

    #[test]
    fn toml_rules_parse_and_bad_ones_say_why() {
        let rules = Rules::from_toml(
            "defaults = false\n[[rule]]\ndrop = \"$.user\"\n[[rule]]\nreplace = \"$.seed\"\nwith = 0\n",
            "normalization.toml",
        )
        .unwrap();
        let mut body = json!({"user": "me", "seed": 7, "stream_options": {}});
        rules.apply("bedrock", "/x", &mut body);
        assert_eq!(body, json!({"seed": 0, "stream_options": {}}));
        let err = Rules::from_toml("[[rule]]\nreplace = \"$.a\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `with`"), "{err}");
        let err = Rules::from_toml("[[rule]]\npattern = \"(\"\nreplacement = \"\"\n", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid normalization rule"), "{err}");
    }
}

#[cfg(test)]
mod same_meaning_tests {
    use super::*;
    use crate::recorder::CanonicalRequest;

    fn key(path: &str, body: &str) -> String {
        let url = url::Url::parse(&format!("http://127.0.0.1:8080{path}")).unwrap();
        CanonicalRequest::new(
            "POST",
            &url,
            Some(body.as_bytes()),
            Some("t"),
            &Rules::llm_defaults(),
        )
        .key(0)
    }

    /// One logical request as curl, the OpenAI Python SDK and the stack's own client send it:
    /// one key.
    #[test]
    fn golden_bodies_of_one_request_hash_the_same() {
        let embeddings = [
            // curl -d '{"model": ..., "input": "x"}'
            r#"{"model": "all-minilm-l6-v2", "input": "The quick brown fox"}"#,
            // OpenAI Python SDK, embeddings.create(model=..., input="..."): encoding_format sent
            // (the stack forwards the SDK's base64 as "float")
            r#"{"input": "The quick brown fox", "model": "all-minilm-l6-v2", "encoding_format": "float"}"#,
            // a list of one, nulls for unset options
            r#"{"model": "all-minilm-l6-v2", "input": ["The quick brown fox"], "dimensions": null, "user": null}"#,
        ];
        let keys: Vec<String> = embeddings
            .iter()
            .map(|b| key("/v1/embeddings", b))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
        let chat = [
            r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}"#,
            r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stream": false, "stop": null, "tools": null}"#,
        ];
        assert_eq!(
            key("/v1/chat/completions", chat[0]),
            key("/v1/chat/completions", chat[1])
        );
    }

    /// What does change the meaning still changes the key.
    #[test]
    fn requests_that_differ_still_differ() {
        let base = r#"{"model": "m", "input": "x"}"#;
        for other in [
            r#"{"model": "m", "input": "x", "encoding_format": "base64"}"#,
            r#"{"model": "m", "input": ["x", "y"]}"#,
            r#"{"model": "m", "input": "x", "dimensions": 8}"#,
        ] {
            assert_ne!(
                key("/v1/embeddings", base),
                key("/v1/embeddings", other),
                "{other}"
            );
        }
        let chat = r#"{"model": "m", "messages": [], "stream": true}"#;
        assert_ne!(
            key("/v1/chat/completions", chat),
            key("/v1/chat/completions", r#"{"model": "m", "messages": []}"#)
        );
        // Nulls inside messages are content, not unset options.
        assert_ne!(
            key(
                "/v1/chat/completions",
                r#"{"model": "m", "messages": [{"role": "assistant", "content": null}]}"#
            ),
            key(
                "/v1/chat/completions",
                r#"{"model": "m", "messages": [{"role": "assistant"}]}"#
            )
        );
        // Other endpoints keep their nulls (only the OpenAI ones are known to mean "unset").
        assert_ne!(key("/mcp", r#"{"a": null}"#), key("/mcp", r#"{}"#));
    }

    #[test]
    fn the_rules_read_from_toml_too() {
        let rules = Rules::from_toml(
            "defaults = false\n[[rule]]\ndrop = \"$.mode\"\nequals = \"fast\"\n[[rule]]\ndrop_nulls = \"$\"\n[[rule]]\nas_list = \"$.items\"\n",
            "test",
        )
        .unwrap();
        let mut v = serde_json::json!({"mode": "fast", "x": null, "items": "a"});
        rules.apply("", "/any", &mut v);
        assert_eq!(v, serde_json::json!({"items": ["a"]}));
        let err = Rules::from_toml("[[rule]]\nequals = 1\nreplace = \"$.a\"\nwith = 2\n", "t")
            .unwrap_err();
        assert!(
            err.to_string().contains("`equals` goes with `drop`"),
            "{err}"
        );
    }
}
