use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The serialisation format of a connection's payloads: the one seam between typed values
/// and bytes.
///
/// Generated dispatch code and proxies never call a serializer directly; they go through a
/// `Codec`. Today the only format is [`Codec::Postcard`]; a Python-compatible format is
/// planned and will be another variant, picked per connection, without touching generated
/// code. The methods are generic, so the choice costs one branch, not a virtual call per
/// value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// [postcard](https://docs.rs/postcard): compact, non-self-describing, the default.
    #[default]
    Postcard,
}

/// A value could not be encoded or decoded by a [`Codec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// A codec error with this description.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl Codec {
    /// Encode `value` into a fresh buffer.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Postcard => {
                postcard::to_stdvec(value).map_err(|e| CodecError::new(e.to_string()))
            }
        }
    }

    /// Encode `value`, appending to `buf`.
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        buf: Vec<u8>,
    ) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Postcard => {
                postcard::to_extend(value, buf).map_err(|e| CodecError::new(e.to_string()))
            }
        }
    }

    /// Decode a value that may borrow from `bytes`. Trailing bytes are an error: a payload
    /// must be exactly one value.
    pub fn decode<'de, T: Deserialize<'de>>(self, bytes: &'de [u8]) -> Result<T, CodecError> {
        match self {
            Codec::Postcard => match postcard::take_from_bytes(bytes) {
                Ok((value, [])) => Ok(value),
                Ok((_, rest)) => Err(CodecError::new(format!(
                    "{} unexpected trailing byte(s) after the value",
                    rest.len()
                ))),
                Err(e) => Err(CodecError::new(e.to_string())),
            },
        }
    }

    /// Decode an owned value.
    pub fn decode_owned<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let c = Codec::Postcard;
        let bytes = c.encode(&(1u32, "two", vec![3u8])).unwrap();
        let (a, b, v): (u32, &str, Vec<u8>) = c.decode(&bytes).unwrap();
        assert_eq!((a, b, v), (1, "two", vec![3]));
        assert!(c.decode::<(u32, String)>(&bytes[..2]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        let err = c.decode::<(u32, &str, Vec<u8>)>(&long).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
