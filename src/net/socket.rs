//! Socket-level helpers for the acceptor: look at the first PDU without
//! consuming it (dicom-ul's establish must still read it), and keep ACKs
//! prompt for senders that leave Nagle's algorithm on.

use dicom_ul::pdu::{AssociationRQ, MAXIMUM_PDU_SIZE};
use dicom_ul::Pdu;
use std::time::Duration;
use tokio::net::TcpStream;

/// Largest A-ASSOCIATE-RQ accepted (a request proposing every storage class
/// with a dozen transfer syntaxes each stays well below).
pub const MAX_RQ: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("closed")]
    Closed,
    #[error("connection closed inside the first PDU")]
    Truncated,
    #[error("first PDU is type 0x{0:02X}, not an A-ASSOCIATE-RQ")]
    NotRequest(u8),
    #[error("A-ASSOCIATE-RQ of {0} bytes exceeds the {MAX_RQ}-byte limit")]
    TooLarge(usize),
    #[error("malformed A-ASSOCIATE-RQ: {0}")]
    Malformed(String),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Peek the first PDU without consuming it; it must be a parseable
/// A-ASSOCIATE-RQ of bounded size. Returns it with its length on the wire.
pub async fn peek_request(stream: &TcpStream) -> Result<(AssociationRQ, usize), PeekError> {
    let mut head = [0u8; 6];
    peek_exact(stream, &mut head, true).await?;
    if head[0] != 0x01 {
        return Err(PeekError::NotRequest(head[0]));
    }
    let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    if len > MAX_RQ {
        return Err(PeekError::TooLarge(len));
    }
    let mut buf = vec![0u8; 6 + len];
    peek_exact(stream, &mut buf, false).await?;
    match dicom_ul::read_pdu(&buf[..], MAXIMUM_PDU_SIZE, false) {
        Ok(Some(Pdu::AssociationRQ(rq))) => Ok((rq, buf.len())),
        Ok(_) => Err(PeekError::Malformed("incomplete".into())),
        Err(e) => Err(PeekError::Malformed(e.to_string())),
    }
}

async fn peek_exact(stream: &TcpStream, buf: &mut [u8], first: bool) -> Result<(), PeekError> {
    loop {
        let n = stream.peek(buf).await?;
        if n >= buf.len() {
            return Ok(());
        }
        if n == 0 {
            return Err(if first {
                PeekError::Closed
            } else {
                PeekError::Truncated
            });
        }
        // Peeking never sees EOF while unread bytes remain: ask the kernel
        // whether the peer has finished sending.
        if peer_finished(stream) {
            if stream.peek(buf).await? >= buf.len() {
                return Ok(());
            }
            return Err(PeekError::Truncated);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether the peer has closed its side (TCP state CLOSE_WAIT or closed).
#[cfg(target_os = "linux")]
fn peer_finished(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    const TCP_CLOSE: u8 = 7;
    const TCP_CLOSE_WAIT: u8 = 8;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a plain C
    // struct for which all-zero bytes are a valid value.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        rc == 0 && (info.tcpi_state == TCP_CLOSE_WAIT || info.tcpi_state == TCP_CLOSE)
    }
}

/// Acknowledge received data at once instead of after the delayed-ACK
/// timer. A sender with Nagle's algorithm on (dcmtk by default) holds its
/// next small PDU until our ACK: without this each C-STORE costs 40 ms.
/// Linux clears the flag as it goes, so it is set before every read.
#[cfg(target_os = "linux")]
pub fn quick_ack(stream: &impl std::os::fd::AsRawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `one`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn quick_ack(_stream: &impl std::os::fd::AsRawFd) {}

#[cfg(not(target_os = "linux"))]
fn peer_finished(_stream: &TcpStream) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn request() -> Vec<u8> {
        let rq = Pdu::AssociationRQ(AssociationRQ {
            protocol_version: 1,
            calling_ae_title: "SCU".into(),
            called_ae_title: "DEIDGATE".into(),
            application_context_name: "1.2.840.10008.3.1.1.1".into(),
            presentation_contexts: vec![],
            user_variables: vec![],
        });
        let mut b = Vec::new();
        dicom_ul::write_pdu(&mut b, &rq).unwrap();
        b
    }

    /// What the acceptor sees when a peer writes `bytes` and closes.
    async fn peek_after(bytes: Vec<u8>) -> Result<(AssociationRQ, usize), PeekError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.shutdown().await.unwrap();
            // Keep the socket until the acceptor has looked.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let (stream, _) = listener.accept().await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), peek_request(&stream))
            .await
            .expect("peek must not hang on a closed peer");
        peer.await.unwrap();
        r
    }

    #[tokio::test]
    async fn first_pdu_is_peeked_and_bounded() {
        let rq = request();
        let (got, len) = peek_after(rq.clone()).await.unwrap();
        assert_eq!((got.calling_ae_title.as_str(), len), ("SCU", rq.len()));
        assert!(matches!(
            peek_after(rq[..rq.len() - 5].to_vec()).await,
            Err(PeekError::Truncated)
        ));
        assert!(matches!(
            peek_after(vec![0x04, 0, 0, 0, 0, 2, 0, 0]).await,
            Err(PeekError::NotRequest(0x04))
        ));
        assert!(matches!(
            peek_after(vec![0x01, 0, 0xFF, 0xFF, 0xFF, 0xFF]).await,
            Err(PeekError::TooLarge(_))
        ));
        assert!(matches!(peek_after(vec![]).await, Err(PeekError::Closed)));
    }
}
