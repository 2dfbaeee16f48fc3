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
//!
//! # CPython clients
//! A server made [`with_python_clients`](ServerHandshake::with_python_clients) also completes
//! the handshake of stock CPython `multiprocessing` clients, which differ in two ways:
//!
//! - CPython 3.12+ challenges with a 40-byte nonce (`#CHALLENGE#{sha256}` + 40 bytes); the
//!   answer is the same `{sha256}` HMAC over whatever follows `#CHALLENGE#`.
//! - CPython 3.11 knows only HMAC-MD5 without a tag: it answers any challenge with the raw
//!   16-byte `HMAC-MD5(key, everything after #CHALLENGE#)`, and challenges with 20 bytes
//!   and no tag, expecting a raw 16-byte HMAC-MD5 back. An answer is taken as legacy by its
//!   length (16 bytes) before anything else, as CPython does: one raw digest in 256 starts
//!   with `{`.
//!
//! MD5 is used only because CPython 3.11 clients require it (both directions); HMAC-MD5
//! has no known practical forgery, but a server that serves no 3.11 client should leave
//! it off, and a server without Python clients never accepts or sends it.

use hmac::{Hmac, Mac};
use md5::Md5;
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
/// Length of a CPython 3.11 challenge's nonce (no digest tag).
pub const LEGACY_NONCE_LEN: usize = 20;
/// Length of a raw HMAC-MD5 digest, CPython 3.11's answer.
pub const LEGACY_DIGEST_LEN: usize = 16;
/// The largest handshake message either side sends; a transport may refuse larger frames.
pub const MAX_MESSAGE_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;
type HmacMd5 = Hmac<Md5>;

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

fn mac_md5(key: &[u8]) -> HmacMd5 {
    <HmacMd5 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The server's answer to a client's challenge: ours (`{sha256}` and a 32-byte nonce),
/// CPython 3.12+'s (`{sha256}` and a longer nonce) and, with `legacy`, CPython 3.11's (20
/// untagged bytes, answered with a raw HMAC-MD5).
fn answer_client(
    key: &[u8],
    challenge_msg: &[u8],
    legacy: bool,
) -> Result<Vec<u8>, HandshakeError> {
    let body = challenge_msg
        .strip_prefix(CHALLENGE)
        .ok_or(HandshakeError::Protocol("expected a challenge"))?;
    if legacy && body.len() == LEGACY_NONCE_LEN {
        let mut m = mac_md5(key);
        m.update(body);
        return Ok(m.finalize().into_bytes().to_vec());
    }
    let nonce = body
        .strip_prefix(DIGEST_TAG)
        .ok_or(HandshakeError::Protocol("expected a {sha256} challenge"))?;
    if nonce.len() < LEGACY_NONCE_LEN {
        return Err(HandshakeError::Protocol("challenge too short"));
    }
    let mut m = mac(key);
    m.update(body);
    Ok([DIGEST_TAG, &m.finalize().into_bytes()].concat())
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

/// Check `response` against the challenge we sent, in constant time; with `legacy`, a
/// 16-byte response is CPython 3.11's raw HMAC-MD5 (decided by length first).
fn verify_client(
    key: &[u8],
    challenge_msg: &[u8],
    response: &[u8],
    legacy: bool,
) -> Result<(), HandshakeError> {
    if legacy && response.len() == LEGACY_DIGEST_LEN {
        let mut m = mac_md5(key);
        m.update(&challenge_msg[CHALLENGE.len()..]);
        return m
            .verify_slice(response)
            .map_err(|_| HandshakeError::BadDigest);
    }
    verify(key, challenge_msg, response)
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
    /// CPython 3.11's HMAC-MD5 is accepted and answered.
    legacy: bool,
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
            legacy: false,
        };
        (machine, challenge)
    }

    /// Also complete the handshake of stock CPython clients: CPython 3.12+'s longer
    /// challenges, and CPython 3.11's raw HMAC-MD5 answers and 20-byte challenges (see the
    /// [module documentation](self#cpython-clients)).
    pub fn with_python_clients(mut self) -> Self {
        self.legacy = true;
        self
    }

    /// Feed the next message from the client.
    pub fn receive(&mut self, message: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, ServerState::Over);
        match state {
            ServerState::AwaitDigest { challenge } => {
                verify_client(&self.key, &challenge, message, self.legacy)?;
                self.state = ServerState::AwaitChallenge;
                Ok(Step::Send(WELCOME.to_vec()))
            }
            ServerState::AwaitChallenge => {
                let reply = answer_client(&self.key, message, self.legacy)?;
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

    /// HMAC over `data` with `digest` ("md5" or "sha256"), computed by CPython's own `hmac`
    /// module would give the same bytes; these are the RFC 2104 constructions.
    fn hmac_md5(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = mac_md5(key);
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = mac(key);
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn a_cpython_3_11_client_completes_with_raw_md5_both_ways() {
        let (s, first) = ServerHandshake::new(b"key", [7; 32]);
        let mut s = s.with_python_clients();
        // 3.11 answers any challenge with raw HMAC-MD5 over all that follows #CHALLENGE#.
        let answer = hmac_md5(b"key", &first[CHALLENGE.len()..]);
        assert_eq!(s.receive(&answer), Ok(Step::Send(WELCOME.to_vec())));
        let challenge = [CHALLENGE, &[5u8; 20]].concat();
        assert_eq!(
            s.receive(&challenge),
            Ok(Step::Send(hmac_md5(b"key", &[5u8; 20])))
        );
        assert_eq!(s.receive(WELCOME), Ok(Step::Finished));
    }

    #[test]
    fn a_cpython_3_12_client_completes_with_its_40_byte_challenge() {
        let (s, first) = ServerHandshake::new(b"key", [7; 32]);
        let mut s = s.with_python_clients();
        let tagged = &first[CHALLENGE.len()..];
        let answer = [DIGEST_TAG, &hmac_sha256(b"key", tagged)].concat();
        assert_eq!(s.receive(&answer), Ok(Step::Send(WELCOME.to_vec())));
        let body = [DIGEST_TAG, &[9u8; 40]].concat();
        let expected = [DIGEST_TAG, &hmac_sha256(b"key", &body)].concat();
        assert_eq!(
            s.receive(&[CHALLENGE, &body].concat()),
            Ok(Step::Send(expected))
        );
    }

    #[test]
    fn md5_is_refused_unless_python_clients_are_served() {
        let (mut s, first) = ServerHandshake::new(b"key", [7; 32]);
        let answer = hmac_md5(b"key", &first[CHALLENGE.len()..]);
        assert!(matches!(
            s.receive(&answer),
            Err(HandshakeError::Protocol(_))
        ));
        // Nor is a 20-byte challenge answered.
        let (mut s, first) = ServerHandshake::new(b"key", [7; 32]);
        let mut c = ClientHandshake::new(b"key", [9; 32]);
        let digest = send(c.receive(&first));
        assert_eq!(send(s.receive(&digest)), WELCOME);
        let legacy = [CHALLENGE, &[5u8; 20]].concat();
        assert!(matches!(
            s.receive(&legacy),
            Err(HandshakeError::Protocol(_))
        ));
    }

    #[test]
    fn a_wrong_md5_digest_is_a_bad_digest() {
        let (s, first) = ServerHandshake::new(b"key", [7; 32]);
        let mut s = s.with_python_clients();
        let answer = hmac_md5(b"other", &first[CHALLENGE.len()..]);
        assert_eq!(s.receive(&answer), Err(HandshakeError::BadDigest));
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
