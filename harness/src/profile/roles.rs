//! The model roles a profile declares: the values tests are parameterized over.
//!
//! A role (Llama Stack's text model, embedding model, safety shield, ...) has a short id that
//! names it in `needs` and in test ids (`[txt=p/m]`), an environment variable and a `suites.toml`
//! setup key for its values. The order of a profile's roles is the order of the parameters in a
//! test id, whatever order a test lists its needs in.

use std::fmt;

/// A handle on a role, by its short id: what [`TestCase::needs`](crate::testkit::TestCase::needs)
/// lists. A profile gives constants for its roles (e.g. [`llama_stack::roles`](super::llama_stack::roles)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(&'static str);

impl Role {
    /// The handle of the role with short id `id` (usable in a `const`).
    pub const fn new(id: &'static str) -> Self {
        Role(id)
    }

    /// The short id (`txt`).
    pub const fn id(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One role a profile declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelRole {
    /// The short id: the role's name in `needs` ([`Role`]) and its parameter prefix in a test id
    /// (`txt` gives `[txt=p/m]`). Changing it changes every test id, and so every recording key.
    pub id: &'static str,
    /// A human name: "text model", "safety shield", ...
    pub label: &'static str,
    /// The environment variable holding explicit values (comma-separated).
    pub env: &'static str,
    /// The key of a `suites.toml` setup's `[defaults]` holding the setup's values.
    pub setup_key: &'static str,
    /// The flag of the project's test script that sets [`ModelRole::env`] (for messages and docs).
    pub flag: &'static str,
}

impl ModelRole {
    /// This role's handle.
    pub const fn role(&self) -> Role {
        Role::new(self.id)
    }

    /// Why a test needing this role is skipped when it has no value.
    pub fn skip_reason(&self) -> String {
        format!(
            "no {}: set {} or pick a setup that has one",
            self.label, self.env
        )
    }
}

/// `roles`' declaration of `role`, if it has one.
pub fn find(roles: &'static [ModelRole], role: Role) -> Option<&'static ModelRole> {
    roles.iter().find(|r| r.id == role.id())
}
