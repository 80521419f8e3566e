//! The `[auth]` section of the config file.

use std::collections::HashSet;

use serde::Deserialize;

use super::Role;

/// Users, API tokens and session settings. Authentication is on when this section is
/// present.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// How long a login lasts.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
    /// Failed or successful login attempts one client address may make per minute.
    #[serde(default = "default_attempts")]
    pub login_attempts_per_minute: u32,
    /// Mark the session cookie `Secure`: set it when a TLS proxy fronts the server.
    #[serde(default)]
    pub secure_cookie: bool,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` / `Forwarded`
    /// headers name the client, for the login rate limit. Empty: the peer address counts.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

fn default_session_minutes() -> u64 {
    12 * 60
}

fn default_attempts() -> u32 {
    10
}

/// A user who signs in on the login page.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// An argon2 hash in PHC form, as `flowdeck hash-password` prints it.
    pub password_hash: String,
    pub role: Role,
}

/// A token a script sends as `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    /// The token's SHA-256 in hex, as `flowdeck new-token` prints it: the config never
    /// holds the token itself.
    pub sha256: String,
    pub role: Role,
}

/// Why an `[auth]` section cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("[auth] lists no users and no tokens: nobody could sign in")]
    Empty,
    #[error("[auth] names {0:?} twice: user and token names must be unique")]
    Duplicate(String),
    #[error("[auth] user {0:?}: password_hash is not an argon2 hash (make one with `flowdeck hash-password`)")]
    BadHash(String),
    #[error(
        "[auth] token {0:?}: sha256 must be 64 hex digits (make one with `flowdeck new-token`)"
    )]
    BadDigest(String),
    #[error("[auth] {0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot hash: {0}")]
    Hashing(String),
    #[error("{0}")]
    Proxies(String),
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.users.is_empty() && self.tokens.is_empty() {
            return Err(ConfigError::Empty);
        }
        if self.session_minutes == 0 {
            return Err(ConfigError::Zero("session_minutes"));
        }
        if self.login_attempts_per_minute == 0 {
            return Err(ConfigError::Zero("login_attempts_per_minute"));
        }
        let mut seen = HashSet::new();
        let names = self
            .users
            .iter()
            .map(|u| &u.name)
            .chain(self.tokens.iter().map(|t| &t.name));
        for name in names {
            if !seen.insert(name) {
                return Err(ConfigError::Duplicate(name.clone()));
            }
        }
        for u in &self.users {
            if !super::secret::is_password_hash(&u.password_hash) {
                return Err(ConfigError::BadHash(u.name.clone()));
            }
        }
        for t in &self.tokens {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::BadDigest(t.name.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            users: vec![UserConfig {
                name: "ada".into(),
                password_hash: super::super::hash_password("pw").unwrap(),
                role: Role::Admin,
            }],
            tokens: vec![TokenConfig {
                name: "ci".into(),
                sha256: "ab".repeat(32),
                role: Role::Viewer,
            }],
            session_minutes: 60,
            login_attempts_per_minute: 10,
            secure_cookie: false,
            trusted_proxies: Vec::new(),
        }
    }

    #[test]
    fn configs_that_would_lock_everyone_out_or_never_match_are_refused() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.users.clear();
        c.tokens.clear();
        assert_eq!(c.validate(), Err(ConfigError::Empty));
        let mut c = config();
        c.tokens[0].name = "ada".into();
        assert_eq!(c.validate(), Err(ConfigError::Duplicate("ada".into())));
        let mut c = config();
        c.users[0].password_hash = "hunter2".into();
        assert_eq!(c.validate(), Err(ConfigError::BadHash("ada".into())));
        let mut c = config();
        c.tokens[0].sha256 = "xyz".into();
        assert_eq!(c.validate(), Err(ConfigError::BadDigest("ci".into())));
        let mut c = config();
        c.session_minutes = 0;
        assert_eq!(c.validate(), Err(ConfigError::Zero("session_minutes")));
        assert!(ConfigError::BadHash("ada".into())
            .to_string()
            .contains("flowdeck hash-password"));
    }
}
