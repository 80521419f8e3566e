//! Signed-in sessions, kept in memory: a restart signs everyone out.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::{secret, Principal, Role};

/// The most sessions kept at once; past it the oldest goes, so a flood of logins cannot
/// grow memory without bound.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session and returns its id (the cookie's value).
    pub fn create(&self, name: &str, role: Role) -> String {
        let id = secret::random_hex();
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                name: name.to_owned(),
                role,
                csrf: secret::random_hex(),
                expires: now + self.ttl,
            },
        );
        id
    }

    /// The principal of a live session.
    pub fn get(&self, id: &str) -> Option<Principal> {
        let mut map = self.map.lock();
        let s = map.get(id)?;
        if s.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some(Principal {
            name: Some(s.name.clone()),
            role: s.role,
            csrf: Some(s.csrf.clone()),
        })
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_expires_or_is_removed() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.create("ada", Role::Admin);
        let p = s.get(&id).unwrap();
        assert_eq!(p.name.as_deref(), Some("ada"));
        assert_eq!(p.role, Role::Admin);
        assert_eq!(p.csrf.as_ref().map(String::len), Some(64));
        assert!(s.get("nope").is_none());
        let other = s.create("bob", Role::Viewer);
        s.remove(&other);
        assert!(s.get(&other).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id).is_none());
    }
}
