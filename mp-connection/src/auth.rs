//! The HMAC challenge-response handshake of `multiprocessing.connection`, compatible with
//! CPython 2.7, 3.11 and 3.12+.
//!
//! | step | server (`deliver_challenge`)                        | client (`answer_challenge`)           |
//! | ---- | --------------------------------------------------- | ------------------------------------- |
//! | 1    | `#CHALLENGE#` + `{sha256}` + 40 random bytes         |                                       |
//! | 2    |                                                     | `{sha256}` + HMAC-SHA256(key, `{sha256}…`) |
//! | 3    | `#WELCOME#` or `#FAILURE#`                           |                                       |
//!
//! Everything after `#CHALLENGE#` is the *message*; the MAC always covers the whole message,
//! digest prefix included, so a client cannot downgrade the digest. Legacy peers (CPython up to
//! 3.11, and 2.7) send `#CHALLENGE#` + 20 random bytes and expect a raw 16-byte HMAC-MD5 of those
//! 20 bytes; when they answer our modern challenge they reply with a raw 16-byte HMAC-MD5 of the
//! whole message, which we accept. A server delivers then answers, a client answers then
//! delivers, so both sides prove they know the key.

use std::time::Duration;

use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::Digest as HashDigest;
use hmac::{Mac, SimpleHmac};
use mp_core::{Connection, Deadline};

use crate::address::fill_random;
use crate::error::{Error, Result};

/// The prefix of a challenge. Python: `multiprocessing.connection._CHALLENGE`.
const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The server's answer to a right digest. Python: `_WELCOME`.
const WELCOME: &[u8] = b"#WELCOME#";
/// The server's answer to a wrong digest. Python: `_FAILURE`.
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a modern challenge. Python 3.12: `MESSAGE_LENGTH`.
const MESSAGE_LENGTH: usize = 40;
/// Random bytes in a legacy (MD5-only) challenge. Python 3.12: `_MD5ONLY_MESSAGE_LENGTH`.
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
/// Length of a raw HMAC-MD5 reply. Python 3.12: `_MD5_DIGEST_LEN`.
const MD5_DIGEST_LEN: usize = 16;
/// The longest digest name (`sha3_256`). Python 3.12: `_MAX_DIGEST_LEN`.
const MAX_DIGEST_LEN: usize = 8;
/// Handshake messages longer than this are refused unread, as CPython's `recv_bytes(256)` does.
pub(crate) const MAX_HANDSHAKE_MESSAGE: u64 = 256;

/// A digest the handshake can use.
///
/// Python 3.12: `multiprocessing.connection._ALLOWED_DIGESTS`. We deliver [`Digest::Sha256`]
/// challenges (as CPython 3.12 does) and answer challenges in any of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-MD5 (`{md5}`, and the legacy raw 16-byte reply).
    Md5,
    /// HMAC-SHA256 (`{sha256}`), the default.
    Sha256,
    /// HMAC-SHA384 (`{sha384}`).
    Sha384,
    /// HMAC-SHA3-256 (`{sha3_256}`).
    Sha3_256,
    /// HMAC-SHA3-384 (`{sha3_384}`).
    Sha3_384,
}

impl Digest {
    /// Every digest, in CPython's naming.
    pub const ALL: [Digest; 5] = [
        Digest::Md5,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha3_256,
        Digest::Sha3_384,
    ];

    /// The name written between braces on the wire (Python's `hashlib` name): `"sha256"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    fn from_name(name: &[u8]) -> Option<Digest> {
        Digest::ALL
            .into_iter()
            .find(|d| d.name().as_bytes() == name)
    }

    /// The MAC length in bytes.
    fn len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha256 | Digest::Sha3_256 => 32,
            Digest::Sha384 | Digest::Sha3_384 => 48,
        }
    }

    /// HMAC of `message` under `key`.
    fn mac(self, key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Digest::Md5 => mac::<md5::Md5>(key, message),
            Digest::Sha256 => mac::<sha2::Sha256>(key, message),
            Digest::Sha384 => mac::<sha2::Sha384>(key, message),
            Digest::Sha3_256 => mac::<sha3::Sha3_256>(key, message),
            Digest::Sha3_384 => mac::<sha3::Sha3_384>(key, message),
        }
    }

    /// Whether `tag` is the HMAC of `message` under `key`, compared in constant time.
    fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> Result<bool> {
        match self {
            Digest::Md5 => verify::<md5::Md5>(key, message, tag),
            Digest::Sha256 => verify::<sha2::Sha256>(key, message, tag),
            Digest::Sha384 => verify::<sha2::Sha384>(key, message, tag),
            Digest::Sha3_256 => verify::<sha3::Sha3_256>(key, message, tag),
            Digest::Sha3_384 => verify::<sha3::Sha3_384>(key, message, tag),
        }
    }
}

fn keyed<D: HashDigest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Result<SimpleHmac<D>> {
    // HMAC takes keys of any length; the error cannot happen, but is not unwrapped.
    let mut m = <SimpleHmac<D> as Mac>::new_from_slice(key)
        .map_err(|_| Error::Authentication("the authentication key is unusable".into()))?;
    m.update(message);
    Ok(m)
}

fn mac<D: HashDigest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    Ok(keyed::<D>(key, message)?.finalize().into_bytes().to_vec())
}

fn verify<D: HashDigest + BlockSizeUser>(key: &[u8], message: &[u8], tag: &[u8]) -> Result<bool> {
    Ok(keyed::<D>(key, message)?.verify_slice(tag).is_ok())
}

/// Splits a challenge message or a reply into its digest and payload.
///
/// Python 3.12: `_get_digest_name_and_payload`. A message of a legacy length (20 or 16 bytes)
/// has no prefix (`None`: raw HMAC-MD5); a modern one starts with `{name}`.
fn split_digest(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        let end = message.len().min(MAX_DIGEST_LEN + 2);
        if let Some(curly) = message[1..end].iter().position(|&b| b == b'}') {
            let curly = curly + 1;
            if let Some(digest) = Digest::from_name(&message[1..curly]) {
                return Ok((Some(digest), &message[curly + 1..]));
            }
        }
    }
    Err(Error::Authentication(format!(
        "unsupported message length ({} bytes), missing digest prefix, or unsupported digest",
        message.len()
    )))
}

/// Checks a client's reply to our challenge `message`. Python 3.12: `_verify_challenge`.
fn verify_reply(authkey: &[u8], message: &[u8], reply: &[u8]) -> Result<()> {
    let (digest, tag) = split_digest(reply)?;
    let digest = digest.unwrap_or(Digest::Md5);
    if tag.len() != digest.len() {
        return Err(Error::Authentication(format!(
            "expected a {} digest of {} bytes, got {} bytes",
            digest.name(),
            digest.len(),
            tag.len()
        )));
    }
    if digest.verify(authkey, message, tag)? {
        Ok(())
    } else {
        Err(Error::Authentication("digest received was wrong".into()))
    }
}

/// The reply to challenge `message` (what follows `#CHALLENGE#`). Python 3.12:
/// `_create_response`.
fn create_reply(authkey: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    match split_digest(message)?.0 {
        // A legacy challenge: a raw HMAC-MD5, no prefix.
        None => Digest::Md5.mac(authkey, message),
        Some(digest) => {
            let mut reply = Vec::with_capacity(digest.name().len() + 2 + digest.len());
            reply.push(b'{');
            reply.extend_from_slice(digest.name().as_bytes());
            reply.push(b'}');
            reply.extend_from_slice(&digest.mac(authkey, message)?);
            Ok(reply)
        }
    }
}

/// Sends a challenge and checks the peer's reply: the server half of the handshake.
///
/// Python: `multiprocessing.connection.deliver_challenge(connection, authkey)`. Sends
/// `#CHALLENGE#{sha256}` and 40 random bytes, reads the reply (at most 256 bytes), and answers
/// `#WELCOME#` when it is the right HMAC of the challenge (HMAC-SHA256, another
/// [`Digest`] the peer names, or a legacy raw HMAC-MD5), `#FAILURE#` otherwise.
///
/// Blocks until the exchange is over; the connection's timeout
/// ([`Connection::set_timeout`]), when set, bounds the whole exchange. Errors:
/// [`Error::Authentication`] for a wrong or malformed reply (after sending `#FAILURE#`);
/// [`Error::Timeout`]; a reply over 256 bytes ([`Error::is_message_too_long`]); the peer closing
/// ([`Error::is_eof`]). After an error the connection is out of step and should be closed.
pub fn deliver_challenge(conn: &mut Connection, authkey: &[u8]) -> Result<()> {
    let deadline = conn.timeout().map_or(Deadline::NEVER, Deadline::after);
    deliver_challenge_deadline(conn, authkey, Digest::Sha256, deadline)
}

/// [`deliver_challenge`] with a chosen digest, giving up with [`Error::Timeout`] after
/// `timeout` for the whole exchange.
///
/// Python 3.12: `deliver_challenge(connection, authkey, digest_name)` on a socket with a timeout.
pub fn deliver_challenge_timeout(
    conn: &mut Connection,
    authkey: &[u8],
    digest: Digest,
    timeout: Duration,
) -> Result<()> {
    deliver_challenge_deadline(conn, authkey, digest, Deadline::after(timeout))
}

/// [`deliver_challenge_timeout`] with a deadline for the whole exchange.
pub fn deliver_challenge_deadline(
    conn: &mut Connection,
    authkey: &[u8],
    digest: Digest,
    deadline: impl Into<Deadline>,
) -> Result<()> {
    let deadline = deadline.into();
    let challenge = new_challenge(digest)?;
    send(conn, &challenge, deadline)?;
    let reply = recv(conn, deadline)?;
    judge_reply(conn, authkey, &challenge, &reply, deadline)
}

/// `#CHALLENGE#{digest}` and [`MESSAGE_LENGTH`] random bytes.
fn new_challenge(digest: Digest) -> Result<Vec<u8>> {
    let name = digest.name().as_bytes();
    let mut challenge = Vec::with_capacity(CHALLENGE.len() + name.len() + 2 + MESSAGE_LENGTH);
    challenge.extend_from_slice(CHALLENGE);
    challenge.push(b'{');
    challenge.extend_from_slice(name);
    challenge.push(b'}');
    let random_at = challenge.len();
    challenge.resize(random_at + MESSAGE_LENGTH, 0);
    fill_random(&mut challenge[random_at..])?;
    Ok(challenge)
}

/// Checks the reply to our `challenge` and tells the peer the verdict.
fn judge_reply(
    conn: &mut Connection,
    authkey: &[u8],
    challenge: &[u8],
    reply: &[u8],
    deadline: Deadline,
) -> Result<()> {
    match verify_reply(authkey, &challenge[CHALLENGE.len()..], reply) {
        Ok(()) => send(conn, WELCOME, deadline),
        Err(e) => {
            // The peer may be gone already; the authentication error is what matters.
            let _ = send(conn, FAILURE, deadline);
            Err(e)
        }
    }
}

/// Answers the peer's challenge and reads its verdict: the client half of the handshake.
///
/// Python: `multiprocessing.connection.answer_challenge(connection, authkey)`. Answers a legacy
/// challenge (20 random bytes) with a raw HMAC-MD5 of them, and a modern one (`{digest}` + random
/// bytes, with any [`Digest`]) with `{digest}` + the HMAC of the whole message.
///
/// Blocks until the exchange is over; the connection's timeout, when set, bounds it. Errors:
/// [`Error::Authentication`] when the peer sends something other than a challenge, a challenge
/// shorter than 20 bytes or with an unknown digest, or rejects our reply (`#FAILURE#`: a wrong
/// key); [`Error::Timeout`]; a message over 256 bytes; the peer closing.
pub fn answer_challenge(conn: &mut Connection, authkey: &[u8]) -> Result<()> {
    let deadline = conn.timeout().map_or(Deadline::NEVER, Deadline::after);
    answer_challenge_deadline(conn, authkey, deadline)
}

/// [`answer_challenge`] giving up with [`Error::Timeout`] after `timeout` for the whole exchange.
pub fn answer_challenge_timeout(
    conn: &mut Connection,
    authkey: &[u8],
    timeout: Duration,
) -> Result<()> {
    answer_challenge_deadline(conn, authkey, Deadline::after(timeout))
}

/// [`answer_challenge_timeout`] with a deadline for the whole exchange.
pub fn answer_challenge_deadline(
    conn: &mut Connection,
    authkey: &[u8],
    deadline: impl Into<Deadline>,
) -> Result<()> {
    let deadline = deadline.into();
    let challenge = recv(conn, deadline)?;
    let reply = create_reply(authkey, challenge_message(&challenge)?)?;
    send(conn, &reply, deadline)?;
    check_verdict(&recv(conn, deadline)?)
}

/// The message of a challenge (what follows `#CHALLENGE#`), checked for CPython's minimum.
fn challenge_message(challenge: &[u8]) -> Result<&[u8]> {
    let Some(message) = challenge.strip_prefix(CHALLENGE) else {
        return Err(Error::Authentication(format!(
            "protocol error: expected a challenge, got a message of {} bytes",
            challenge.len()
        )));
    };
    if message.len() < MD5ONLY_MESSAGE_LENGTH {
        return Err(Error::Authentication(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    Ok(message)
}

fn check_verdict(verdict: &[u8]) -> Result<()> {
    if verdict == WELCOME {
        Ok(())
    } else {
        Err(Error::Authentication("digest sent was rejected".into()))
    }
}

/// The client's whole handshake, `answer_challenge` then `deliver_challenge`, pipelined: our
/// challenge leaves right after our reply instead of after the verdict, which saves a round
/// trip.
///
/// The server sees the same messages in the same order, and CPython's (which reads exactly one
/// frame at a time) finds our challenge waiting when it gets to it. If the server rejects us,
/// the challenge is simply never read.
pub(crate) fn client_handshake(
    conn: &mut Connection,
    authkey: &[u8],
    deadline: Deadline,
) -> Result<()> {
    let challenge = recv(conn, deadline)?;
    let reply = create_reply(authkey, challenge_message(&challenge)?)?;
    let ours = new_challenge(Digest::Sha256)?;
    send(conn, &reply, deadline)?;
    // A server that refuses our answer may close before our challenge arrives, and writing it
    // then fails (EPIPE): read the verdict anyway, which says why.
    let sent = send(conn, &ours, deadline);
    match (recv(conn, deadline), sent) {
        (Ok(verdict), sent) => {
            check_verdict(&verdict)?;
            sent?;
        }
        (Err(_), Err(e)) => return Err(e),
        (Err(e), Ok(())) => return Err(e),
    }
    let their_reply = recv(conn, deadline)?;
    judge_reply(conn, authkey, &ours, &their_reply, deadline)
}

/// Sends one handshake message before `deadline` (the Connection's own deadline-bounded write).
fn send(conn: &mut Connection, message: &[u8], deadline: Deadline) -> Result<()> {
    if message.len() as u64 > MAX_HANDSHAKE_MESSAGE {
        return Err(Error::Authentication("handshake message too long".into()));
    }
    Ok(conn.send_bytes_deadline(message, deadline)?)
}

/// Reads one handshake message of at most [`MAX_HANDSHAKE_MESSAGE`] bytes before `deadline`.
///
/// The deadline bounds the whole message, not each read, so a peer that trickles bytes cannot
/// hold us longer; a longer announcement is refused unread (and the end is then unreadable).
///
/// It looks for the message for [`mp_core::spin::SPIN`] (within the deadline) before it sleeps:
/// each message of a handshake answers the one just sent, so it usually comes within
/// microseconds, where a wake-up from another CPU costs tens of them on a VM (three such
/// exchanges made a listener's handshake across two CPUs take 202 µs, against 57 with the
/// spin).
fn recv(conn: &mut Connection, deadline: Deadline) -> Result<Vec<u8>> {
    let spin = mp_core::spin::SPIN.min(deadline.remaining().unwrap_or(mp_core::spin::SPIN));
    let _came =
        mp_core::spin::spin_until(spin, || conn.poll_timeout(Duration::ZERO).unwrap_or(true));
    let limit = conn.max_message_size();
    conn.set_max_message_size(limit.min(MAX_HANDSHAKE_MESSAGE));
    let message = conn.recv_bytes_deadline(deadline);
    conn.set_max_message_size(limit);
    Ok(message?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_digest_follows_cpython() {
        assert_eq!(split_digest(&[0; 20]).unwrap().0, None);
        assert_eq!(split_digest(&[0; 16]).unwrap().0, None);
        let (d, rest) = split_digest(b"{sha3_384}abcdefghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(d, Some(Digest::Sha3_384));
        assert_eq!(rest, b"abcdefghijklmnopqrstuvwxyz");
        assert!(split_digest(b"{sha1}abcdefghijklmnopqrstuvwxyz").is_err());
        assert!(split_digest(b"no prefix at all, but long enough").is_err());
        assert!(split_digest(b"").is_err());
        assert!(split_digest(b"{").is_err());
    }

    #[test]
    fn reply_covers_the_prefix() {
        let key = b"key";
        let message = b"{sha256}0123456789012345678901234567890123456789";
        let reply = create_reply(key, message).unwrap();
        assert!(reply.starts_with(b"{sha256}"));
        assert_eq!(reply.len(), 8 + 32);
        verify_reply(key, message, &reply).unwrap();
        assert!(verify_reply(b"other", message, &reply)
            .unwrap_err()
            .is_authentication());
        // A legacy client's raw MD5 over the same message is accepted.
        let legacy = Digest::Md5.mac(key, message).unwrap();
        verify_reply(key, message, &legacy).unwrap();
    }

    #[test]
    fn known_vector_hmac_md5() {
        // RFC 2104 test case 2.
        let mac = Digest::Md5
            .mac(b"Jefe", b"what do ya want for nothing?")
            .unwrap();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "750c783e6ab0b503eaa86e310a5db738");
    }
}
