//! bot-bottle machine names and the slugs that become paths.
//!
//! `machine ls` is input from the VM host, and slugs end up in file names
//! (`<state>/<slug>/…`) and image names, so a slug is validated before any use.

use std::fmt;

/// The default machine name prefix of bot-bottle sandboxes.
pub const DEFAULT_PREFIX: &str = "bot-bottle-";

const MAX_SLUG_LEN: usize = 63;

/// A validated slug: 1–63 characters of `[a-z0-9-_.]`, starting with a letter or digit.
/// Lowercase only because it becomes part of a Docker image name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, String> {
        if s.is_empty() {
            return Err("the slug is empty".into());
        }
        if s.len() > MAX_SLUG_LEN {
            return Err(format!(
                "the slug is {} bytes long (at most {MAX_SLUG_LEN})",
                s.len()
            ));
        }
        let first = s.as_bytes()[0];
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err("the slug must start with a lowercase letter or digit".into());
        }
        if let Some(bad) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        }) {
            return Err(format!(
                "the slug contains {:?}, allowed are a-z, 0-9, '-', '_' and '.'",
                crate::sanitize::escape_str(&bad.to_string())
            ));
        }
        if s.contains("..") {
            return Err("the slug contains '..'".into());
        }
        Ok(Slug(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a machine name relates to the bot-bottle convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// Not a bot-bottle machine at all.
    Foreign,
    /// `<prefix><slug>` with a valid slug.
    Bottle(Slug),
    /// Has the prefix, but what follows cannot be used safely; the reason says why.
    Refused(String),
}

pub fn classify(name: &str, prefix: &str) -> NameKind {
    match name.strip_prefix(prefix) {
        None => NameKind::Foreign,
        Some(rest) => match Slug::parse(rest) {
            Ok(slug) => NameKind::Bottle(slug),
            Err(why) => NameKind::Refused(why),
        },
    }
}

/// Accepts either a slug or a full machine name from the operator.
pub fn slug_from_arg(arg: &str, prefix: &str) -> Result<Slug, String> {
    Slug::parse(arg.strip_prefix(prefix).unwrap_or(arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_slugs() {
        assert_eq!(
            classify("bot-bottle-alpha-1", DEFAULT_PREFIX),
            NameKind::Bottle(Slug("alpha-1".into()))
        );
        assert_eq!(classify("other-vm", DEFAULT_PREFIX), NameKind::Foreign);
    }

    #[test]
    fn refuses_hostile_names() {
        for bad in [
            "../../x",
            "",
            "a/b",
            "a\0b",
            "a b",
            "A",
            ".hidden",
            "x..y",
            &"a".repeat(300),
        ] {
            let name = format!("bot-bottle-{bad}");
            assert!(
                matches!(classify(&name, DEFAULT_PREFIX), NameKind::Refused(_)),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn slug_from_arg_takes_both_forms() {
        assert_eq!(
            slug_from_arg("bot-bottle-web", DEFAULT_PREFIX)
                .unwrap()
                .as_str(),
            "web"
        );
        assert_eq!(
            slug_from_arg("web", DEFAULT_PREFIX).unwrap().as_str(),
            "web"
        );
        assert!(slug_from_arg("bot-bottle-../x", DEFAULT_PREFIX).is_err());
    }
}
