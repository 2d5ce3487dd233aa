//! `${env.VAR}` substitution in run-config strings, with Llama Stack's syntax:
//!
//! - `${env.VAR}`: the variable's value; an error when it is not set.
//! - `${env.VAR:=default}`: the value when set and not empty, else `default`.
//! - `${env.VAR:+value}`: `value` when the variable is set and not empty, else the empty string.
//!
//! `default` and `value` may themselves contain substitutions, e.g.
//! `${env.OPENAI_BASE_URL:=${env.OPENAI_API_KEY:+https://api.openai.com/v1}}`. A `${` that does not
//! start `${env.` is kept as it is.

/// Why a substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    /// `${env.VAR}` without a default, and `VAR` is not set.
    #[error(
        "environment variable {0} is not set (write ${{env.{0}:=default}} to give it a default)"
    )]
    Unset(String),
    /// The expression is malformed.
    #[error("malformed substitution `{expr}`: {reason}")]
    Malformed {
        /// The text from `${env.` on.
        expr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

const OPEN: &str = "${env.";

/// Deepest `${...}` nesting accepted: evaluation recurses once a level (found by fuzzing: 8,000
/// levels overflowed the stack).
const MAX_NESTING: usize = 32;

/// Replaces every `${env...}` expression in `input`, looking variables up with `env`.
pub fn substitute(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    substitute_nested(input, env, 0)
}

/// [`substitute`] of a default or alternative `depth` expressions deep.
fn substitute_nested(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, SubstError> {
    if depth > MAX_NESTING {
        return Err(SubstError::Malformed {
            expr: input.chars().take(80).collect(),
            reason: "`${...}` nested more than 32 levels deep",
        });
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let expr_and_after = &rest[start..];
        let body_start = start + OPEN.len();
        let end = matching_brace(rest, start + 1).ok_or_else(|| SubstError::Malformed {
            expr: expr_and_after.to_owned(),
            reason: "no closing `}`",
        })?;
        let body = &rest[body_start..end];
        out.push_str(&evaluate(body, &rest[start..=end], env, depth)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing the `{` at `open`, counting nested `${`.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Evaluates the inside of one `${env.` ... `}` expression.
fn evaluate(
    body: &str,
    expr: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, SubstError> {
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, op_and_arg) = body.split_at(name_len);
    if name.is_empty() {
        return Err(SubstError::Malformed {
            expr: expr.to_owned(),
            reason: "missing variable name",
        });
    }
    let value = env(name).filter(|v| !v.is_empty());
    if op_and_arg.is_empty() {
        return match env(name) {
            Some(v) => Ok(v),
            None => Err(SubstError::Unset(name.to_owned())),
        };
    }
    if let Some(default) = op_and_arg.strip_prefix(":=") {
        return match value {
            Some(v) => Ok(v),
            None => substitute_nested(default, env, depth + 1),
        };
    }
    if let Some(alternative) = op_and_arg.strip_prefix(":+") {
        return match value {
            Some(_) => substitute_nested(alternative, env, depth + 1),
            None => Ok(String::new()),
        };
    }
    Err(SubstError::Malformed {
        expr: expr.to_owned(),
        reason: "expected `}`, `:=default` or `:+value` after the variable name",
    })
}

/// A substitution that failed in a run config: the key path of the string and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ValueSubstError {
    /// Key path of the string, e.g. `providers[1].base_url`.
    pub path: String,
    /// Why its substitution failed.
    #[source]
    pub source: SubstError,
}

/// Substitutes every string in `value` (table values and array items, not keys) in place, the
/// run config's one substitution pass before it is deserialized.
pub fn substitute_all(
    value: &mut toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ValueSubstError> {
    substitute_at(value, env, &mut String::new())
}

fn substitute_at(
    value: &mut toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut String,
) -> Result<(), ValueSubstError> {
    let len = path.len();
    match value {
        toml::Value::String(s) => {
            *s = substitute(s, env).map_err(|source| ValueSubstError {
                path: path.clone(),
                source,
            })?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                substitute_at(item, env, path)?;
                path.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                substitute_at(item, env, path)?;
                path.truncate(len);
            }
        }
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "KEY" => Some("sk-1".into()),
            _ => None,
        }
    }

    fn sub(s: &str) -> Result<String, SubstError> {
        substitute(s, &env)
    }

    #[test]
    fn plain_and_defaults() {
        assert_eq!(sub("a ${env.SET} b").unwrap(), "a value b");
        assert_eq!(sub("${env.EMPTY}").unwrap(), "");
        assert_eq!(sub("${env.NOPE:=http://x:1/v1}").unwrap(), "http://x:1/v1");
        assert_eq!(sub("${env.EMPTY:=d}").unwrap(), "d");
        assert_eq!(sub("${env.SET:=d}").unwrap(), "value");
        assert_eq!(sub("${env.NOPE:=}").unwrap(), "");
        assert_eq!(sub("no vars, ${literal}").unwrap(), "no vars, ${literal}");
    }

    #[test]
    fn alternatives_and_nesting() {
        assert_eq!(sub("${env.SET:+on}").unwrap(), "on");
        assert_eq!(sub("${env.NOPE:+on}").unwrap(), "");
        let openai = "${env.OPENAI_BASE_URL:=${env.KEY:+https://api.openai.com/v1}}";
        assert_eq!(sub(openai).unwrap(), "https://api.openai.com/v1");
        let off = "${env.OPENAI_BASE_URL:=${env.NOKEY:+https://api.openai.com/v1}}";
        assert_eq!(sub(off).unwrap(), "");
        // An unused default is not evaluated.
        assert_eq!(sub("${env.SET:=${env.NOPE}}").unwrap(), "value");
    }

    #[test]
    fn errors_name_the_variable_or_the_expression() {
        assert_eq!(sub("${env.NOPE}"), Err(SubstError::Unset("NOPE".into())));
        assert!(sub("${env.NOPE}").unwrap_err().to_string().contains("NOPE"));
        assert!(matches!(
            sub("${env.SET"),
            Err(SubstError::Malformed { .. })
        ));
        assert!(matches!(sub("${env.}"), Err(SubstError::Malformed { .. })));
        assert!(matches!(
            sub("${env.SET:-x}"),
            Err(SubstError::Malformed { .. })
        ));
        assert!(matches!(
            sub("${env.A-B}"),
            Err(SubstError::Malformed { .. })
        ));
    }
}

#[cfg(test)]
mod nesting_tests {
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "${env.X:=".repeat(8000), "}".repeat(8000));
        let err = super::substitute(&deep, &|_| None).unwrap_err().to_string();
        assert!(err.contains("nested more than 32"), "{err}");
        let fine = format!("{}v{}", "${env.X:=".repeat(5), "}".repeat(5));
        assert_eq!(super::substitute(&fine, &|_| None).unwrap(), "v");
        // Braces that are not substitutions (JSON in a string) nest as deep as they like.
        let json = format!("{}{}", "{\"a\":".repeat(40), "}".repeat(40));
        assert_eq!(super::substitute(&json, &|_| None).unwrap(), json);
    }
}
