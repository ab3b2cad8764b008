//! bot-bottle machine names and the slugs that become paths.
//!
//! `machine ls` is input from the VM host, and slugs end up in file names
//! (`<state>/<slug>/…`) and image names, so a slug is validated before any use.

use std::fmt;

/// The default machine name prefix of bot-bottle sandboxes.
pub const DEFAULT_PREFIX: &str = "bot-bottle-";

const MAX_SLUG_LEN: usize = 63;

/// A validated slug: 1–63 characters of `[a-z0-9-_.]`, starting and ending with a letter or
/// digit, that Docker accepts in an image name (`bot-bottle-committed-<slug>`): Docker's
/// reference grammar for a path component, `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
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
        if !is_docker_path_component(s) {
            return Err(format!(
                "the slug {s:?} cannot be part of a Docker image name (it must end with a letter or digit, \
                 and separators are one '.', one or two '_', or dashes, between letters and digits)"
            ));
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

/// Whether `s` is one path component of a Docker image name:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` (distribution's reference grammar). A slug that
/// fails it would stream the whole root and then fail at build with "invalid reference format".
pub fn is_docker_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of letters and digits.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator: '.', '_', '__' or any number of '-'.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
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
            // Docker cannot tag these (issue 12, item 16).
            "rt-",
            "rt.",
            "rt___x",
            "rt._x",
            "rt_-x",
            "rt-.x",
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
    fn docker_path_component_grammar() {
        for ok in [
            "a",
            "rt",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "1-2.3_4__5",
            "web01",
        ] {
            assert!(is_docker_path_component(ok), "{ok:?} refused");
            assert!(Slug::parse(ok).is_ok(), "{ok:?} refused as a slug");
        }
        for bad in [
            "", "-", "a-", "a.", "a_", "a___b", "a._b", "a.-b", "a..b", "_a", "A",
        ] {
            assert!(!is_docker_path_component(bad), "{bad:?} accepted");
        }
        let why = Slug::parse("rt-").unwrap_err();
        assert!(why.contains("Docker image name"), "{why}");
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
