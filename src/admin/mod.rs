//! The admin socket: how the CLI reaches a running gateway.
//!
//! sled allows one process per database, so while `serve` runs, `deidgate
//! users|reid|audit|deadletter|keys backup` cannot open the key store
//! themselves. The gateway listens on `<data_dir>/admin.sock` (mode 0600
//! inside the 0700 data directory) and runs those commands for the CLI. Only
//! the gateway's own user (or root) may connect: the kernel's peer
//! credentials are checked, so the socket grants nothing that reading the
//! data directory would not.
//!
//! Protocol: one JSON request line, one JSON response, then close.

pub mod commands;
pub mod dead_letters;
pub mod reply;

use crate::pipeline::spool::Spool;
use crate::runtime::Runtime;
use anyhow::{anyhow, Context, Result};
use commands::{ReleaseSink, Reply, StoreCmd};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest request accepted (a command and its arguments).
const MAX_REQUEST: u64 = 1 << 20;

#[derive(Deserialize)]
struct Request {
    actor: String,
    cmd: StoreCmd,
}

/// The sending side of [`Request`].
#[derive(Serialize)]
struct RequestRef<'a> {
    actor: &'a str,
    cmd: &'a StoreCmd,
}

#[derive(Serialize, Deserialize)]
enum Response {
    Ok(Reply),
    Err(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Sends `cmd` to a running gateway. `Ok(None)`: none is running.
pub fn send(data_dir: &Path, actor: &str, cmd: &StoreCmd) -> Result<Option<Result<Reply>>> {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    let path = socket_path(data_dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        // No gateway, or a socket file left by one that was killed.
        Err(e) if matches!(e.kind(), NotFound | ConnectionRefused) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    let line = serde_json::to_string(&RequestRef { actor, cmd })?;
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let resp: Response = serde_json::from_reader(BufReader::new(stream))
        .context("the gateway closed the admin connection without an answer")?;
    Ok(Some(match resp {
        Response::Ok(r) => Ok(r),
        Response::Err(e) => Err(anyhow!(e)),
    }))
}

/// The running gateway's spool and the workers' queue.
#[derive(Clone)]
pub struct LiveSpool {
    pub spool: Arc<Spool>,
    pub queue: tokio::sync::mpsc::Sender<String>,
}

impl ReleaseSink for LiveSpool {
    fn release(&self, bytes: &[u8]) -> Result<String> {
        let id = self.spool.release(bytes)?;
        // Durable in the spool already; if the queue is gone (shutting
        // down), the next start picks it up from there.
        let _ = self.queue.blocking_send(id.clone());
        Ok(id)
    }
}

/// Binds the admin socket and serves it until the runtime stops. A failure
/// to bind is logged, not fatal: the gateway's main job goes on.
pub fn start(rt: Arc<Runtime>, live: LiveSpool) {
    let path = socket_path(rt.config.data_dir());
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "admin socket unavailable; stop the gateway to use the key-store commands");
            return;
        }
    };
    tracing::info!(path = %path.display(), "admin socket for the CLI");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (rt, live) = (rt.clone(), live.clone());
                    tokio::spawn(async move {
                        if let Err(e) = handle(rt, live, stream).await {
                            tracing::warn!(error = %format!("{e:#}"), "admin request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
}

fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // A socket file left by a killed gateway: we hold the key store lock,
    // so no other gateway is using it.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

async fn handle(rt: Arc<Runtime>, live: LiveSpool, stream: tokio::net::UnixStream) -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let peer = stream.peer_cred()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if peer.uid() != me && peer.uid() != 0 {
        tracing::warn!(
            uid = peer.uid(),
            "admin socket: refused a connection from another user"
        );
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Err(format!("bad admin request: {e}")),
        Ok(req) => {
            let rt = rt.clone();
            let r = tokio::task::spawn_blocking(move || {
                commands::execute(&rt.config, &rt.store, &live, &req.actor, req.cmd)
            })
            .await?;
            match r {
                Ok(reply) => Response::Ok(reply),
                Err(e) => Response::Err(format!("{e:#}")),
            }
        }
    };
    write.write_all(&serde_json::to_vec(&resp)?).await?;
    write.shutdown().await?;
    Ok(())
}
