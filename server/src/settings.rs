//! The config file (TOML): the command line's settings, plus the `[auth]` section that only
//! a file can hold. A flag or environment variable given at start wins over the file.
//!
//! ```toml
//! host = "127.0.0.1"
//! port = 3000
//! refresh_ms = 250
//! readonly = false
//! theme = "system"            # or "light", "dark"
//! cors_origins = []           # origins whose pages may call the API (with a token)
//!
//! [auth]
//! session_minutes = 720
//!
//! [[auth.users]]
//! name = "ada"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # flowdeck hash-password
//! role = "admin"                                          # or "viewer"
//!
//! [[auth.tokens]]
//! name = "ci"
//! sha256 = "9f86d08..."                                   # flowdeck new-token
//! role = "viewer"
//! ```

use std::{net::IpAddr, path::Path};

use serde::Deserialize;

use crate::auth::AuthConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub refresh_ms: Option<u64>,
    pub readonly: Option<bool>,
    pub demo_rate: Option<u32>,
    pub demo_latency: Option<f64>,
    pub drain_timeout_secs: Option<u64>,
    /// system, light or dark: for browsers that have not chosen with the toggle.
    pub theme: Option<flowdeck_app::theme::Theme>,
    /// Origins whose pages may call the API with a token, such as "https://tools.example".
    pub cors_origins: Option<Vec<String>>,
    pub auth: Option<AuthConfig>,
}

impl FileConfig {
    /// Reads and parses a config file; the error names the file and, for bad TOML, the
    /// line and the key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_named() {
        let c = FileConfig::parse(
            r#"
            host = "0.0.0.0"
            port = 8080
            readonly = true
            [auth]
            [[auth.users]]
            name = "ada"
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
            role = "viewer"
            "#,
        )
        .unwrap();
        assert_eq!(c.port, Some(8080));
        assert_eq!(c.readonly, Some(true));
        let auth = c.auth.unwrap();
        assert_eq!(auth.users[0].name, "ada");
        assert_eq!(auth.session_minutes, 720);

        let err = FileConfig::parse("prot = 1").unwrap_err();
        assert!(err.contains("prot"), "{err}");
        let err = FileConfig::parse(
            "[auth]\n[[auth.users]]\nname = \"x\"\npassword_hash = \"h\"\nrole = \"root\"",
        )
        .unwrap_err();
        assert!(err.contains("root"), "{err}");
    }
}
