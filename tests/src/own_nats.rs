//! A NATS server (with JetStream) of the test's own, on a free port with
//! its store in a temporary directory, that the test can stop the hard way
//! and start again on the same port and store: the shared one on 4222 is
//! never stopped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `nats-server -js` process.
pub struct OwnNats {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts one and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("anamnesis-nats-")
            .tempdir()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let mut nats = Self {
            dir,
            port,
            child: None,
        };
        nats.start_again().await?;
        Ok(nats)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and store.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting nats-server (is it installed?): {e}"))?;
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("nats-server on port {} did not answer", self.port)
    }

    /// Kills it (SIGKILL): no goodbye to its clients.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
