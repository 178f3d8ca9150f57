//! Peer programs the tests start on loopback ports: DCMTK storescp as a
//! receiving archive, and the config of a gateway destination pointing at it.
#![allow(dead_code)]

use super::gateway::DEADLINE;
use super::tool;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < DEADLINE, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// storescp accepting every transfer syntax, one file per received instance
/// (`+uf`: unique names, so an instance sent twice shows up twice).
pub fn storescp(dir: &Path, port: u16) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(tool("storescp"))
        .args(["-aet", "STORESCP", "+xa", "+uf", "-od"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    Peer(child)
}

pub fn dicom_destination(name: &str, ae: &str, port: u16) -> String {
    format!(
        "[[destination]]\nname = \"out\"\ntype = \"folder\"\n\
         [[destination]]\nname = \"{name}\"\ntype = \"dicom\"\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         retry_initial_secs = 1\nretry_max_secs = 2\n"
    )
}
