use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The server-assigned identifier of one shared object, unique for the server's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub u64);

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Where a manager listens: a TCP `host:port` or a Unix socket path.
///
/// Parsed from text with [`str::parse`]: `unix:/path`, or anything containing a `/`, is a
/// Unix socket path; everything else is a TCP address such as `127.0.0.1:0` (port 0 lets the
/// OS pick one; the server reports the real one).
///
/// ```
/// use manager_core::Address;
/// let tcp: Address = "127.0.0.1:5000".parse().unwrap();
/// assert_eq!(tcp, Address::Tcp("127.0.0.1:5000".into()));
/// let unix: Address = "/tmp/manager.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/tmp/manager.sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Address {
    /// A TCP socket address, `host:port`.
    Tcp(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => f.write_str(a),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The text given to [`Address::from_str`] was not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manager address `{0}`: expected `host:port`, `unix:PATH` or a path")]
pub struct AddressParseError(pub String);

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressParseError(s.to_owned()));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(s.to_owned()))
            }
            _ => Err(AddressParseError(s.to_owned())),
        }
    }
}

impl From<std::net::SocketAddr> for Address {
    fn from(addr: std::net::SocketAddr) -> Self {
        Address::Tcp(addr.to_string())
    }
}

/// Everything needed to find a shared object again: its typeid, its id and its manager.
///
/// The counterpart of Python's `multiprocessing.managers.Token`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    /// The typeid the object was registered or created under.
    pub typeid: String,
    /// The address of the manager that owns the object.
    pub address: Address,
    /// The object's id in that manager.
    pub id: ObjectId,
    /// The server instance that made the token: random for each start of a manager, so a
    /// token from an earlier instance at the same address is recognised as such instead of
    /// reaching an object that happens to have its id in the new one.
    pub epoch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "localhost:80".parse(),
            Ok(Address::Tcp("localhost:80".into()))
        );
        assert_eq!("[::1]:80".parse(), Ok(Address::Tcp("[::1]:80".into())));
        assert_eq!(
            "unix:rel.sock".parse(),
            Ok(Address::Unix(PathBuf::from("rel.sock")))
        );
        assert!("nonsense".parse::<Address>().is_err());
        assert!("host:99999".parse::<Address>().is_err());
        assert!("unix:".parse::<Address>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["127.0.0.1:0", "unix:/tmp/x.sock"] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        }
    }
}
