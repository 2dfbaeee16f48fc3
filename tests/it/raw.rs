//! A hand-driven client speaking the wire protocol byte by byte, to send what the real
//! client never would.

use std::time::Duration;

use manager_core::handshake::{ClientHandshake, Step};
use manager_core::wire::{self, ClientMessage, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(address: &managers::Address) -> Raw {
        let managers::Address::Tcp(a) = address else {
            panic!("raw client speaks TCP only")
        };
        Raw {
            stream: TcpStream::connect(a.as_str()).await.unwrap(),
        }
    }

    /// Connect and authenticate with `key`.
    pub async fn authenticated(address: &managers::Address, key: &[u8]) -> Raw {
        let mut raw = Raw::connect(address).await;
        let mut machine = ClientHandshake::new(key, [42; 32]);
        loop {
            let message = raw.read_frame().await.expect("handshake frame");
            match machine.receive(&message).expect("handshake step") {
                Step::Send(m) => raw.write_frame(&m).await,
                Step::SendAndFinish(m) => {
                    raw.write_frame(&m).await;
                    break;
                }
                Step::Finished => break,
            }
        }
        raw
    }

    pub async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Announce a frame of `len` bytes without sending it.
    pub async fn stream_write_header(&mut self, len: u32) {
        self.stream.write_all(&len.to_be_bytes()).await.unwrap();
    }

    pub async fn stream_write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    /// The next frame, or `None` at EOF / reset.
    pub async fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    pub async fn send(&mut self, message: &ClientMessage<'_>) {
        self.write_frame(&wire::encode(message).unwrap()).await;
    }

    /// Read one reply and hand it to `check`.
    pub async fn recv<R>(&mut self, check: impl FnOnce(ServerMessage<'_>) -> R) -> R {
        let frame = self.read_frame().await.expect("a reply");
        check(wire::decode(&frame).expect("a valid reply"))
    }

    /// Whether the server closes the connection (reads to EOF, 10 s at most).
    pub async fn is_closed_by_server(&mut self) -> bool {
        let mut sink = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut sink)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }
}
