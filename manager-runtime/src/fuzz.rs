//! Entry points of the fuzz targets (the `fuzz/` folder) and of their corpus replay test:
//! each takes arbitrary bytes as a peer could send them and must return without panicking.
//! Not part of the API.

use manager_core::handshake::{ClientHandshake, ServerHandshake};
use manager_core::wire::{self, ClientMessage, ServerMessage};

use crate::Value;

/// The frame reader's split of a byte stream into frames (max 1 KiB).
pub fn frames(data: &[u8]) {
    if let Ok((whole, _missing)) = crate::transport::scan(data, 1024) {
        for frame in crate::transport::frames(&data[..whole]) {
            // Every frame body is within the batch the scan accepted.
            assert!(frame.len() <= 1024);
        }
    }
}

/// A frame a client sends after the handshake, as the server decodes it.
pub fn client_message(data: &[u8]) {
    let _ = wire::decode::<ClientMessage<'_>>(data);
}

/// A frame a server sends, as the client decodes it.
pub fn server_message(data: &[u8]) {
    let _ = wire::decode::<ServerMessage<'_>>(data);
}

/// The handshake, both sides, fed the messages in `data` (each a length byte, then that
/// many bytes).
pub fn handshake(data: &[u8]) {
    let (mut server, _challenge) = ServerHandshake::new(b"key", [7; 32]);
    let mut client = ClientHandshake::new(b"key", [9; 32]);
    let mut rest = data;
    let mut turn = 0u8;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (message, tail) = tail.split_at(len);
        rest = tail;
        let stop = match turn % 2 {
            0 => server.receive(message).is_err(),
            _ => client.receive(message).is_err(),
        };
        turn = turn.wrapping_add(1);
        if stop {
            break;
        }
    }
}

/// A `Value` (what `dict`, `list`, `Queue` and `Namespace` store) decoded from the wire.
pub fn value(data: &[u8]) {
    if let Ok(value) = postcard::from_bytes::<Value>(data) {
        // A decoded value re-encodes.
        let _ = postcard::to_stdvec(&value);
    }
}
