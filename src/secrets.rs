//! Files whose names say they hold credentials: SSH private keys, cloud and registry
//! logins, package-index tokens, `.env` files, agents' own logins.
//!
//! A bot-bottle VM holds an agent's credentials, and a frozen artifact is made to be
//! copied to other hosts. exec-tar's scanner sees every entry's name and asks
//! [`credential_kind`]; what matches is listed in the record, as a warning, and
//! `--fail-on-secrets` turns it into a refusal. Names only: contents are never read, so
//! a secret in a file with an ordinary name is not found, and a harmless file with one of
//! these names is listed.

use serde::{Deserialize, Serialize};

/// Entries kept by name; past this, only counted.
pub const MAX_LISTED: usize = 100;

/// Paths (as their last components) that hold credentials, and what they are.
const BY_SUFFIX: &[(&[&str], &str)] = &[
    (&["id_rsa"], "SSH private key"),
    (&["id_dsa"], "SSH private key"),
    (&["id_ecdsa"], "SSH private key"),
    (&["id_ecdsa_sk"], "SSH private key"),
    (&["id_ed25519"], "SSH private key"),
    (&["id_ed25519_sk"], "SSH private key"),
    (&[".ssh", "identity"], "SSH private key"),
    (&[".aws", "credentials"], "AWS credentials"),
    (&[".config", "gh", "hosts.yml"], "GitHub CLI token"),
    (&[".config", "hub"], "GitHub hub token"),
    (
        &[".config", "github-copilot", "hosts.json"],
        "GitHub Copilot token",
    ),
    (
        &[".config", "github-copilot", "apps.json"],
        "GitHub Copilot token",
    ),
    (&[".netrc"], "netrc logins"),
    (&["_netrc"], "netrc logins"),
    (&[".git-credentials"], "git credentials"),
    (&[".docker", "config.json"], "Docker registry logins"),
    (&[".npmrc"], "npm token"),
    (&[".pypirc"], "PyPI token"),
    (&[".yarnrc.yml"], "Yarn registry token"),
    (&[".cargo", "credentials"], "crates.io token"),
    (&[".cargo", "credentials.toml"], "crates.io token"),
    (&[".kube", "config"], "Kubernetes credentials"),
    (&[".vault-token"], "Vault token"),
    (&[".pgpass"], "PostgreSQL passwords"),
    (&[".my.cnf"], "MySQL password"),
    (
        &[".terraform.d", "credentials.tfrc.json"],
        "Terraform token",
    ),
    (
        &[".config", "gcloud", "credentials.db"],
        "Google Cloud credentials",
    ),
    (
        &[".config", "gcloud", "application_default_credentials.json"],
        "Google Cloud credentials",
    ),
    (&[".azure", "accessTokens.json"], "Azure tokens"),
    (&[".azure", "msal_token_cache.json"], "Azure tokens"),
    (&[".gnupg", "secring.gpg"], "GnuPG private keys"),
    (&[".claude", ".credentials.json"], "Claude login"),
    (&[".codex", "auth.json"], "Codex login"),
];

/// What a name says a file holds, if it names a well-known credential file. `path` is
/// the entry's name as tar wrote it (`./home/node/.ssh/id_ed25519`).
pub fn credential_kind(path: &[u8]) -> Option<&'static str> {
    let path = std::str::from_utf8(path).ok()?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let name = *parts.last()?;
    for (suffix, kind) in BY_SUFFIX {
        if parts.len() >= suffix.len() && parts[parts.len() - suffix.len()..] == **suffix {
            return Some(kind);
        }
    }
    let parent = parts.len().checked_sub(2).map(|i| parts[i]);
    if name == ".env"
        || (name.starts_with(".env.")
            && ![".env.example", ".env.sample", ".env.template", ".env.dist"].contains(&name))
    {
        return Some("environment file");
    }
    if parent == Some("private-keys-v1.d") {
        return Some("GnuPG private key");
    }
    if parent == Some("legacy_credentials") {
        return Some("Google Cloud credentials");
    }
    if parent == Some("ssh") && name.starts_with("ssh_host_") && name.ends_with("_key") {
        return Some("SSH host private key");
    }
    None
}

/// One entry named like a credential file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The path in the guest (escaped for display).
    pub path: String,
    pub kind: String,
}

/// The entries of an archive named like credential files: the first [`MAX_LISTED`],
/// and how many more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub listed: Vec<Credential>,
    pub more: u64,
}

impl Findings {
    /// Looks at one entry's name (regular files only: the caller knows the type).
    pub fn check(&mut self, path: &[u8]) {
        let Some(kind) = credential_kind(path) else {
            return;
        };
        if self.listed.len() >= MAX_LISTED {
            self.more += 1;
            return;
        }
        let shown = crate::sanitize::escape_bytes(path);
        let shown = shown.strip_prefix('.').unwrap_or(&shown);
        self.listed.push(Credential {
            path: if shown.starts_with('/') {
                shown.to_string()
            } else {
                format!("/{shown}")
            },
            kind: kind.to_string(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.listed.len() as u64 + self.more
    }

    /// One line naming the files (the first few), for warnings and refusals.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 5;
        let mut s = self
            .listed
            .iter()
            .take(SHOWN)
            .map(|c| format!("{} ({})", c.path, c.kind))
            .collect::<Vec<_>>()
            .join(", ");
        let rest = self.count().saturating_sub(SHOWN as u64);
        if rest > 0 {
            s.push_str(&format!(" and {rest} more"));
        }
        format!(
            "{} file{} named like credentials, which the artifact would carry: {s} (by name only; leave them out with --exclude PATH)",
            self.count(),
            if self.count() == 1 { "" } else { "s" }
        )
    }
}

/// `--exclude` values as guest tar takes them: an absolute path becomes the member
/// name tar writes under `--directory=/ .` (`/home/node/.ssh` → `./home/node/.ssh`, which
/// leaves out the folder and all in it); anything else is passed as a pattern (`.env`
/// matches that name anywhere).
pub fn tar_exclude(path: &str) -> Result<String, String> {
    if path.is_empty() || path.chars().any(char::is_control) {
        return Err(format!(
            "the exclude {:?} is empty or has control characters",
            crate::sanitize::escape_str(path)
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Err("excluding / would leave nothing to freeze".into());
    }
    Ok(match trimmed.strip_prefix('/') {
        Some(rest) => format!("--exclude=./{rest}"),
        None => format!("--exclude={trimmed}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_credential_names_are_found() {
        for (path, kind) in [
            ("./home/node/.ssh/id_ed25519", "SSH private key"),
            ("./root/.ssh/id_rsa", "SSH private key"),
            ("./home/node/.aws/credentials", "AWS credentials"),
            ("./home/node/.config/gh/hosts.yml", "GitHub CLI token"),
            ("./home/node/.netrc", "netrc logins"),
            ("./home/node/.git-credentials", "git credentials"),
            ("./home/node/.docker/config.json", "Docker registry logins"),
            ("./home/node/.npmrc", "npm token"),
            ("./home/node/.pypirc", "PyPI token"),
            ("./home/node/project/.env", "environment file"),
            ("./home/node/project/.env.local", "environment file"),
            ("./home/node/.kube/config", "Kubernetes credentials"),
            ("./etc/ssh/ssh_host_ed25519_key", "SSH host private key"),
            (
                "./home/node/.gnupg/private-keys-v1.d/AB12.key",
                "GnuPG private key",
            ),
            ("./home/node/.claude/.credentials.json", "Claude login"),
            ("home/node/.npmrc", "npm token"),
        ] {
            assert_eq!(credential_kind(path.as_bytes()), Some(kind), "{path}");
        }
        for path in [
            "./home/node/.ssh/id_ed25519.pub",
            "./home/node/.ssh/known_hosts",
            "./etc/ssh/ssh_host_ed25519_key.pub",
            "./home/node/project/.env.example",
            "./home/node/.config/gh/config.yml",
            "./home/node/.aws/config",
            "./usr/share/doc/credentials",
            "./home/node/.environment",
            "./",
        ] {
            assert_eq!(credential_kind(path.as_bytes()), None, "{path}");
        }
    }

    #[test]
    fn findings_are_capped_and_summarised() {
        let mut f = Findings::default();
        for i in 0..(MAX_LISTED + 7) {
            f.check(format!("./srv/{i}/.env").as_bytes());
        }
        f.check(b"./srv/ordinary.txt");
        assert_eq!(f.listed.len(), MAX_LISTED);
        assert_eq!(f.count(), MAX_LISTED as u64 + 7);
        assert_eq!(f.listed[0].path, "/srv/0/.env");
        let s = f.summary();
        assert!(s.starts_with("107 files named like credentials"), "{s}");
        assert!(s.contains("and 102 more"), "{s}");
        let mut hostile = Findings::default();
        hostile.check(b"./home/\x1b]0;x\x07/.npmrc");
        assert!(!hostile.summary().contains('\x1b'));
    }

    #[test]
    fn excludes_become_member_names() {
        assert_eq!(
            tar_exclude("/home/node/.ssh/").unwrap(),
            "--exclude=./home/node/.ssh"
        );
        assert_eq!(tar_exclude(".env").unwrap(), "--exclude=.env");
        assert!(tar_exclude("/").is_err());
        assert!(tar_exclude("").is_err());
        assert!(tar_exclude("a\nb").is_err());
    }
}
