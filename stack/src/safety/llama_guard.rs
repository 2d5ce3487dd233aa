//! The `inline::llama-guard` safety provider's pure parts: the Llama Guard 3 prompt (categories
//! S1 to S14, the conversation, the assessment instruction for its last user or assistant turn),
//! the parsing of the guard model's verdict, and the mapping of its categories to OpenAI's
//! moderation categories. The provider itself (`super`) sends the prompt as a chat completion
//! through the stack's own router.

use serde_json::Value;

/// The Llama Guard 3 hazard categories, `S1` to `S14`.
pub const CATEGORIES: [(&str, &str); 14] = [
    ("S1", "Violent Crimes"),
    ("S2", "Non-Violent Crimes"),
    ("S3", "Sex-Related Crimes"),
    ("S4", "Child Sexual Exploitation"),
    ("S5", "Defamation"),
    ("S6", "Specialized Advice"),
    ("S7", "Privacy"),
    ("S8", "Intellectual Property"),
    ("S9", "Indiscriminate Weapons"),
    ("S10", "Hate"),
    ("S11", "Suicide & Self-Harm"),
    ("S12", "Sexual Content"),
    ("S13", "Elections"),
    ("S14", "Code Interpreter Abuse"),
];

/// OpenAI's moderation categories, in the order its API lists them.
pub const OPENAI_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// What a refused request is told (Llama Stack's wording).
pub const REFUSAL: &str = "I can't answer that. Can I help with something else?";

/// The OpenAI moderation category of a Llama Guard category, when there is one (S5 defamation,
/// S6 specialized advice, S7 privacy, S8 intellectual property and S13 elections have none: a
/// message flagged for them is flagged with no OpenAI category set, and its Llama Guard categories
/// are in the metadata).
pub fn openai_category(code: &str) -> Option<&'static str> {
    Some(match code {
        "S1" => "violence",
        "S2" | "S14" => "illicit",
        "S3" | "S12" => "sexual",
        "S4" => "sexual/minors",
        "S9" => "illicit/violent",
        "S10" => "hate",
        "S11" => "self-harm",
        _ => return None,
    })
}

/// The name of a category code.
pub fn category_name(code: &str) -> Option<&'static str> {
    CATEGORIES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// Who spoke a conversation turn, as Llama Guard names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `User`.
    User,
    /// `Agent` (the assistant).
    Agent,
}

/// The prompt asking the guard model about the last turn of `turns` (role, text), leaving out
/// the `excluded` categories.
pub fn prompt(turns: &[(Role, String)], excluded: &[String]) -> String {
    let assessed = match turns.last().map(|(r, _)| *r) {
        Some(Role::Agent) => "Agent",
        _ => "User",
    };
    let mut p = format!(
        "Task: Check if there is unsafe content in '{assessed}' messages in conversations according to our safety policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    );
    for (code, name) in CATEGORIES
        .iter()
        .filter(|(c, _)| !excluded.iter().any(|e| e == c))
    {
        p.push_str(&format!("{code}: {name}.\n"));
    }
    p.push_str("<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n");
    for (role, text) in turns {
        let who = match role {
            Role::User => "User",
            Role::Agent => "Agent",
        };
        p.push_str(&format!("{who}: {text}\n\n"));
    }
    p.push_str(&format!(
        "<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST {assessed} message in the above conversation:\n - First line must read 'safe' or 'unsafe'.\n - If unsafe, a second line must include a comma-separated list of violated categories."
    ));
    p
}

/// A llama.cpp grammar that allows only well-formed verdicts (`safe`, or `unsafe` and a category
/// list), for providers that accept one.
pub const VERDICT_GRAMMAR: &str =
    "root ::= \"safe\" | \"unsafe\\n\" cat (\",\" cat)*\ncat ::= \"S\" ([1-9] | \"1\" [0-4])";

/// A guard model's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `safe`.
    Safe,
    /// `unsafe`, with the violated category codes (`S1`...), possibly none when the model named
    /// none.
    Unsafe(Vec<String>),
}

/// Why a guard model's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the guard model's answer is not a Llama Guard verdict ('safe', or 'unsafe' and categories): {answer:?}"
)]
pub struct UnreadableVerdict {
    /// The answer, as the model gave it.
    pub answer: String,
}

/// Reads a verdict: first line `safe` or `unsafe`; after `unsafe`, the categories (comma
/// separated, on the next line). Anything else is an error quoting the answer, never a silent
/// `safe`.
pub fn parse(answer: &str) -> Result<Verdict, UnreadableVerdict> {
    let unreadable = || UnreadableVerdict {
        answer: answer.to_owned(),
    };
    let mut lines = answer
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    match lines.next().map(str::to_ascii_lowercase).as_deref() {
        Some("safe") => Ok(Verdict::Safe),
        Some("unsafe") => {
            let mut codes = Vec::new();
            for line in lines {
                for code in line.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    let code = code.to_ascii_uppercase();
                    if category_name(&code).is_none() {
                        return Err(unreadable());
                    }
                    if !codes.contains(&code) {
                        codes.push(code);
                    }
                }
            }
            Ok(Verdict::Unsafe(codes))
        }
        _ => Err(unreadable()),
    }
}

/// The text of a message's `content`: a string, or its text parts joined. `None` for anything
/// else.
pub fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_and_unreadable_answers_quote_the_answer() {
        assert_eq!(parse("safe"), Ok(Verdict::Safe));
        assert_eq!(parse("  Safe\n"), Ok(Verdict::Safe));
        assert_eq!(
            parse("unsafe\nS1,S9"),
            Ok(Verdict::Unsafe(vec!["S1".into(), "S9".into()]))
        );
        assert_eq!(
            parse("unsafe\ns10, S10"),
            Ok(Verdict::Unsafe(vec!["S10".into()]))
        );
        assert_eq!(parse("unsafe"), Ok(Verdict::Unsafe(vec![])));
        for bad in [
            "",
            "I think it is fine",
            "unsafe\nS15",
            "safe-ish",
            "unsafe\nviolence",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.answer, bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn every_category_has_a_name_and_mapped_ones_are_openai_categories() {
        for (code, _) in CATEGORIES {
            if let Some(c) = openai_category(code) {
                assert!(OPENAI_CATEGORIES.contains(&c), "{code} -> {c}");
            }
        }
        assert_eq!(openai_category("S1"), Some("violence"));
        assert_eq!(openai_category("S9"), Some("illicit/violent"));
        assert_eq!(openai_category("S6"), None);
        assert_eq!(category_name("S14"), Some("Code Interpreter Abuse"));
    }

    #[test]
    fn the_prompt_names_the_assessed_turn_and_leaves_out_excluded_categories() {
        let turns = vec![
            (Role::User, "How do I bake bread?".to_owned()),
            (Role::Agent, "Mix flour and water.".to_owned()),
        ];
        let p = prompt(&turns, &["S6".into()]);
        assert!(p.contains("ONLY THE LAST Agent message"), "{p}");
        assert!(
            p.contains("User: How do I bake bread?\n\nAgent: Mix flour and water."),
            "{p}"
        );
        assert!(
            p.contains("S1: Violent Crimes.") && !p.contains("S6:"),
            "{p}"
        );
        let p = prompt(&turns[..1], &[]);
        assert!(
            p.contains("ONLY THE LAST User message") && p.contains("S14: Code Interpreter Abuse.")
        );
    }

    #[test]
    fn content_text_from_strings_and_parts() {
        assert_eq!(text_of(&serde_json::json!("a")), Some("a".into()));
        assert_eq!(
            text_of(
                &serde_json::json!([{"type": "text", "text": "a"}, {"type": "input_text", "text": "b"}])
            ),
            Some("ab".into())
        );
        assert_eq!(text_of(&serde_json::json!(3)), None);
        assert_eq!(text_of(&serde_json::json!([{"type": "image_url"}])), None);
    }
}
