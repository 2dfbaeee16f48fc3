//! Mutual HMAC-SHA256 challenge-response, as a state machine with no I/O.
//!
//! The exchange follows the shape of CPython's `multiprocessing.connection`
//! (`deliver_challenge` / `answer_challenge`, 3.12+ `{sha256}` flavour), one message per
//! length-delimited frame:
//!
//! ```text
//! server -> client   #CHALLENGE#{sha256}<32 random bytes: Ns>
//! client -> server   {sha256}<HMAC-SHA256(key, "{sha256}" + Ns)>
//! server -> client   #WELCOME#            (or #FAILURE#, then close)
//! client -> server   #CHALLENGE#{sha256}<32 random bytes: Nc>
//! server -> client   {sha256}<HMAC-SHA256(key, "{sha256}" + Nc)>
//! client -> server   #WELCOME#            (or #FAILURE#, then close)
//! ```
//!
//! The server challenges first, so it answers a challenge only from a client that has
//! already proven the key (no reflection). Digests are compared in constant time
//! ([`hmac::Mac::verify_slice`]). Nonces come from the caller, which keeps this module free of
//! OS randomness and makes it testable. No payload is decoded before both sides are done.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of a challenge message.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// Sent when the peer's digest was right.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// Sent when the peer's digest was wrong, just before closing.
pub const FAILURE: &[u8] = b"#FAILURE#";
/// The digest tag, as in CPython 3.12+.
pub const DIGEST_TAG: &[u8] = b"{sha256}";
/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 32;
/// The largest handshake message either side sends; a transport may refuse larger frames.
pub const MAX_MESSAGE_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's digest did not match: it does not have our key.
    #[error("the peer's digest is wrong: authentication keys differ")]
    BadDigest,
    /// The peer told us our digest was wrong.
    #[error("the peer rejected our digest: authentication keys differ")]
    Rejected,
    /// The peer sent something that is not the expected handshake message.
    #[error("unexpected handshake message ({0})")]
    Protocol(&'static str),
    /// `receive` was called after the handshake finished or failed.
    #[error("the handshake is already over")]
    Finished,
}

impl HandshakeError {
    /// The message to send the peer before closing, if any.
    pub fn reply(&self) -> Option<&'static [u8]> {
        match self {
            HandshakeError::BadDigest => Some(FAILURE),
            _ => None,
        }
    }
}

/// What to do after feeding a message to a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send this message and wait for the next one.
    Send(Vec<u8>),
    /// Send this message; the handshake is then complete.
    SendAndFinish(Vec<u8>),
    /// The handshake is complete; nothing more to send.
    Finished,
}

fn challenge(nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    [CHALLENGE, DIGEST_TAG, nonce.as_slice()].concat()
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The answer to a challenge message: `{sha256}` + HMAC of the tagged nonce.
fn answer(key: &[u8], challenge_msg: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let tagged = challenge_msg
        .strip_prefix(CHALLENGE)
        .filter(|rest| rest.starts_with(DIGEST_TAG) && rest.len() == DIGEST_TAG.len() + NONCE_LEN)
        .ok_or(HandshakeError::Protocol("expected a {sha256} challenge"))?;
    let mut m = mac(key);
    m.update(tagged);
    Ok([DIGEST_TAG, &m.finalize().into_bytes()].concat())
}

/// Check `response` against the challenge we sent, in constant time.
fn verify(key: &[u8], challenge_msg: &[u8], response: &[u8]) -> Result<(), HandshakeError> {
    let digest = response
        .strip_prefix(DIGEST_TAG)
        .ok_or(HandshakeError::Protocol("expected a {sha256} digest"))?;
    let mut m = mac(key);
    m.update(&challenge_msg[CHALLENGE.len()..]);
    m.verify_slice(digest)
        .map_err(|_| HandshakeError::BadDigest)
}

#[derive(Debug)]
enum ServerState {
    AwaitDigest { challenge: Vec<u8> },
    AwaitChallenge,
    AwaitVerdict,
    Over,
}

/// The server side of the handshake.
///
/// ```
/// use manager_core::handshake::{ClientHandshake, ServerHandshake, Step};
/// let (mut server, first) = ServerHandshake::new(b"key", [1; 32]);
/// let mut client = ClientHandshake::new(b"key", [2; 32]);
/// let Step::Send(digest) = client.receive(&first).unwrap() else { panic!() };
/// let Step::Send(welcome) = server.receive(&digest).unwrap() else { panic!() };
/// let Step::Send(challenge) = client.receive(&welcome).unwrap() else { panic!() };
/// let Step::Send(answer) = server.receive(&challenge).unwrap() else { panic!() };
/// let Step::SendAndFinish(verdict) = client.receive(&answer).unwrap() else { panic!() };
/// assert_eq!(server.receive(&verdict).unwrap(), Step::Finished);
/// ```
#[derive(Debug)]
pub struct ServerHandshake {
    key: Vec<u8>,
    state: ServerState,
}

impl ServerHandshake {
    /// Start a handshake; returns the machine and the challenge to send first.
    pub fn new(key: &[u8], nonce: [u8; NONCE_LEN]) -> (Self, Vec<u8>) {
        let challenge = challenge(&nonce);
        let machine = Self {
            key: key.to_vec(),
            state: ServerState::AwaitDigest {
                challenge: challenge.clone(),
            },
        };
        (machine, challenge)
    }

    /// Feed the next message from the client.
    pub fn receive(&mut self, message: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, ServerState::Over);
        match state {
            ServerState::AwaitDigest { challenge } => {
                verify(&self.key, &challenge, message)?;
                self.state = ServerState::AwaitChallenge;
                Ok(Step::Send(WELCOME.to_vec()))
            }
            ServerState::AwaitChallenge => {
                let reply = answer(&self.key, message)?;
                self.state = ServerState::AwaitVerdict;
                Ok(Step::Send(reply))
            }
            ServerState::AwaitVerdict => match message {
                WELCOME => Ok(Step::Finished),
                FAILURE => Err(HandshakeError::Rejected),
                _ => Err(HandshakeError::Protocol("expected #WELCOME# or #FAILURE#")),
            },
            ServerState::Over => Err(HandshakeError::Finished),
        }
    }
}

#[derive(Debug)]
enum ClientState {
    AwaitChallenge,
    AwaitVerdict,
    AwaitDigest { challenge: Vec<u8> },
    Over,
}

/// The client side of the handshake.
#[derive(Debug)]
pub struct ClientHandshake {
    key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    state: ClientState,
}

impl ClientHandshake {
    /// Start a handshake; the client waits for the server's challenge.
    pub fn new(key: &[u8], nonce: [u8; NONCE_LEN]) -> Self {
        Self {
            key: key.to_vec(),
            nonce,
            state: ClientState::AwaitChallenge,
        }
    }

    /// Feed the next message from the server.
    pub fn receive(&mut self, message: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, ClientState::Over);
        match state {
            ClientState::AwaitChallenge => {
                let reply = answer(&self.key, message)?;
                self.state = ClientState::AwaitVerdict;
                Ok(Step::Send(reply))
            }
            ClientState::AwaitVerdict => match message {
                WELCOME => {
                    let ours = challenge(&self.nonce);
                    self.state = ClientState::AwaitDigest {
                        challenge: ours.clone(),
                    };
                    Ok(Step::Send(ours))
                }
                FAILURE => Err(HandshakeError::Rejected),
                _ => Err(HandshakeError::Protocol("expected #WELCOME# or #FAILURE#")),
            },
            ClientState::AwaitDigest { challenge } => {
                verify(&self.key, &challenge, message)?;
                Ok(Step::SendAndFinish(WELCOME.to_vec()))
            }
            ClientState::Over => Err(HandshakeError::Finished),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(step: Result<Step, HandshakeError>) -> Vec<u8> {
        match step.unwrap() {
            Step::Send(m) | Step::SendAndFinish(m) => m,
            Step::Finished => panic!("nothing to send"),
        }
    }

    #[test]
    fn same_key_completes() {
        let (mut s, first) = ServerHandshake::new(b"secret", [7; 32]);
        let mut c = ClientHandshake::new(b"secret", [9; 32]);
        let digest = send(c.receive(&first));
        assert_eq!(send(s.receive(&digest)), WELCOME);
        let challenge = send(c.receive(WELCOME));
        let answer = send(s.receive(&challenge));
        assert_eq!(
            c.receive(&answer),
            Ok(Step::SendAndFinish(WELCOME.to_vec()))
        );
        assert_eq!(s.receive(WELCOME), Ok(Step::Finished));
        assert_eq!(s.receive(WELCOME), Err(HandshakeError::Finished));
        assert_eq!(c.receive(WELCOME), Err(HandshakeError::Finished));
    }

    #[test]
    fn wrong_client_key_is_rejected_by_the_server() {
        let (mut s, first) = ServerHandshake::new(b"right", [7; 32]);
        let mut c = ClientHandshake::new(b"wrong", [9; 32]);
        let digest = send(c.receive(&first));
        let err = s.receive(&digest).unwrap_err();
        assert_eq!(err, HandshakeError::BadDigest);
        assert_eq!(err.reply(), Some(FAILURE));
        assert_eq!(c.receive(FAILURE), Err(HandshakeError::Rejected));
    }

    #[test]
    fn a_server_without_the_key_is_caught_by_the_client() {
        // A server that skips checking (or forwards) still cannot answer our challenge.
        let mut c = ClientHandshake::new(b"right", [9; 32]);
        let (_, first) = ServerHandshake::new(b"impostor", [7; 32]);
        let _digest = send(c.receive(&first));
        let challenge = send(c.receive(WELCOME));
        let (mut impostor, _) = ServerHandshake::new(b"impostor", [1; 32]);
        impostor.state = ServerState::AwaitChallenge;
        let answer = send(impostor.receive(&challenge));
        assert_eq!(c.receive(&answer), Err(HandshakeError::BadDigest));
    }

    #[test]
    fn fresh_nonces_give_fresh_challenges() {
        let (_, a) = ServerHandshake::new(b"k", [1; 32]);
        let (_, b) = ServerHandshake::new(b"k", [2; 32]);
        assert_ne!(a, b);
        assert!(a.len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (mut s, _) = ServerHandshake::new(b"k", [1; 32]);
        assert!(matches!(
            s.receive(b"hello"),
            Err(HandshakeError::Protocol(_))
        ));
        let mut c = ClientHandshake::new(b"k", [1; 32]);
        assert!(matches!(
            c.receive(b"#CHALLENGE#short"),
            Err(HandshakeError::Protocol(_))
        ));
        let (mut s, _) = ServerHandshake::new(b"k", [1; 32]);
        assert_eq!(s.receive(b"{sha256}short"), Err(HandshakeError::BadDigest));
    }
}
