//! What every container shares: elements are stored on the server as format-neutral
//! [`Value`]s and converted by the typed proxies on the client; a Python-like `repr` for
//! `Display`; and Python-style indexes.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Outcome, SyncError};
use crate::{from_value, to_value, Value};

/// Convert a typed value into its stored form.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, SyncError> {
    to_value(value).map_err(|e| SyncError::Invalid(e.to_string()))
}

/// Convert typed items into their stored form (for constructors and `extend`).
pub(crate) fn encode_all<T: Serialize>(
    items: impl IntoIterator<Item = T>,
) -> Result<Vec<Value>, SyncError> {
    items.into_iter().map(|i| encode(&i)).collect()
}

/// Convert typed entries into their stored form (for constructors and `update`).
pub(crate) fn encode_pairs<K: Serialize, V: Serialize>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<(Value, Value)>, SyncError> {
    entries
        .into_iter()
        .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
        .collect()
}

/// Read a typed value out of its stored form.
pub(super) fn decode<T: DeserializeOwned>(value: Value) -> Result<T, SyncError> {
    from_value(value).map_err(|e| SyncError::Invalid(e.to_string()))
}

/// Read typed items out of their stored form.
pub(super) fn decode_all<T: DeserializeOwned>(items: Vec<Value>) -> Result<Vec<T>, SyncError> {
    items.into_iter().map(decode).collect()
}

/// Python's `repr` of a stored value, for `Display` of containers.
pub(super) fn repr(value: &Value, out: &mut String) {
    match value {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => repr_float(*f, out),
        Value::Str(s) => repr_str(s, out),
        Value::Bytes(b) => repr_bytes(b, out),
        Value::List(items) => repr_list(items, out),
        Value::Tuple(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(item, out);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::Map(entries) => repr_map(entries.iter().map(|(k, v)| (k, v)), out),
        Value::Variant(name, payload) => {
            out.push_str(name);
            if !payload.is_none() {
                out.push('(');
                repr(payload, out);
                out.push(')');
            }
        }
        Value::Proxy(p) => {
            let _ = write!(out, "<proxy {} {}>", p.typeid(), p.id());
        }
        other => {
            let _ = write!(out, "<{} object>", other.type_name());
        }
    }
}

/// A float as Python's `repr` writes it: the shortest digits that read back, fixed
/// notation for exponents from -4 to 15 (`0.0001`, `1e+16`, `1.5e-05`), `inf`, `nan`.
fn repr_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e[-]x`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
}

/// The quote Python's `repr` picks: `'` unless the text has one and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// A string as Python's `repr` writes it.
fn repr_str(s: &str, out: &mut String) {
    let quote = quote_for(s.contains('\''), s.contains('"'));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let n = u32::from(c);
                let _ = match n {
                    0..=0xff => write!(out, "\\x{n:02x}"),
                    0x100..=0xffff => write!(out, "\\u{n:04x}"),
                    _ => write!(out, "\\U{n:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Bytes as Python's `repr` writes them: `b'...'`, printable ASCII as itself.
fn repr_bytes(b: &[u8], out: &mut String) {
    let quote = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            byte if char::from(byte) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            byte => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote);
}

/// `[a, b]`.
pub(super) fn repr_list<'a>(items: impl IntoIterator<Item = &'a Value>, out: &mut String) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        repr(item, out);
    }
    out.push(']');
}

/// `{k: v, ...}`.
pub(super) fn repr_map<'a>(
    entries: impl IntoIterator<Item = (&'a Value, &'a Value)>,
    out: &mut String,
) {
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        repr(k, out);
        out.push_str(": ");
        repr(v, out);
    }
    out.push('}');
}

/// [`SyncError::NotFound`] naming `key` by its `repr`.
pub(super) fn not_found(key: &Value) -> SyncError {
    let mut out = String::new();
    repr(key, &mut out);
    SyncError::NotFound(out)
}

/// The indices `seq[start:stop:step]` selects in a sequence of `len` items, as Python's
/// `range(*slice(start, stop, step).indices(len))`. `step` must not be 0.
pub(super) fn slice_indices(
    len: usize,
    start: Option<i64>,
    stop: Option<i64>,
    step: i64,
) -> Vec<usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
    let clamp = |bound: Option<i64>, default: i64| match bound {
        None => default,
        Some(i) if i < 0 => i.saturating_add(len).max(lower),
        Some(i) => i.min(upper),
    };
    let start = clamp(start, if step < 0 { upper } else { lower });
    let stop = clamp(stop, if step < 0 { lower } else { upper });
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(usize::try_from(i).unwrap_or(0));
        i = i.saturating_add(step);
    }
    out
}

/// Normalise a Python-style index (negative counts from the end) into `0..len`, or
/// [`SyncError::OutOfRange`].
pub(super) fn position(index: i64, len: usize) -> Outcome<usize> {
    let signed_len = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 {
        index.saturating_add(signed_len)
    } else {
        index
    };
    if (0..signed_len).contains(&i) {
        Ok(i as usize)
    } else {
        Err(SyncError::OutOfRange(index.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &Value) -> String {
        let mut out = String::new();
        repr(value, &mut out);
        out
    }

    #[test]
    fn repr_is_pythonic() {
        let value = Value::Map(vec![
            (
                Value::from("a"),
                Value::List(vec![Value::Int(1), Value::None]),
            ),
            (Value::Int(2), Value::Bool(true)),
        ]);
        assert_eq!(text(&value), r#"{'a': [1, None], 2: True}"#);
        assert_eq!(
            text(&Value::Bytes(vec![b'h', b'i', 0, 0xff])),
            r#"b'hi\x00\xff'"#
        );
        // As CPython 3.11 prints them.
        let floats = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (2.5e300, "2.5e+300"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in floats {
            assert_eq!(text(&Value::Float(f)), want, "{f:e}");
        }
        let strs = [
            ("plain", "'plain'"),
            ("it's", r#""it's""#),
            (r#"both ' and ""#, r#"'both \' and "'"#),
            ("tab\tnew\nline\\", r"'tab\tnew\nline\\'"),
            ("bell\u{7}", r"'bell\x07'"),
            ("ünï€ødé", "'ünï€ødé'"),
        ];
        for (s, want) in strs {
            assert_eq!(text(&Value::from(s)), want);
        }
        let one = Value::Tuple(vec![Value::Int(1)]);
        assert_eq!(text(&one), "(1,)");
        assert_eq!(
            text(&Value::Tuple(vec![Value::Int(1), Value::None])),
            "(1, None)"
        );
        let unit = Value::Variant("Idle".into(), Box::new(Value::None));
        assert_eq!(text(&unit), "Idle");
        let newtype = Value::Variant("Busy".into(), Box::new(Value::Int(3)));
        assert_eq!(text(&newtype), "Busy(3)");
    }

    #[test]
    fn positions_count_from_either_end() {
        assert_eq!(position(0, 3).unwrap(), 0);
        assert_eq!(position(2, 3).unwrap(), 2);
        assert_eq!(position(-1, 3).unwrap(), 2);
        assert_eq!(position(-3, 3).unwrap(), 0);
        for bad in [3, -4, i64::MIN, i64::MAX] {
            assert!(matches!(position(bad, 3), Err(SyncError::OutOfRange(_))));
        }
        assert!(position(0, 0).is_err());
        assert!(position(-1, 0).is_err());
    }
}
