//! What a manager says about the types it serves: the static facts `#[shared]` records for
//! each type at compile time ([`Param`], [`Returns`], in [`MethodInfo`]),
//! and their owned, serialisable form sent over the wire ([`TypeDescription`]).

use serde::{Deserialize, Serialize};

use crate::{MethodInfo, Receiver};

/// One parameter of an exposed method, as written in its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name.
    pub name: &'static str,
    /// Its Rust type, as written (`Vec<u8>`, `&str`).
    pub ty: &'static str,
}

/// How an error of a method reaches its caller (`#[shared(errors = ..)]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorsAs {
    /// As its `Display` text (`RemoteError::Method`).
    Text,
    /// As the error type itself (`CallError::Method`).
    Typed,
}

/// What an exposed method returns, as written.
#[derive(Debug, Clone, Copy)]
pub enum Returns {
    /// Nothing (`()`).
    Unit,
    /// A value of this type, copied to the caller (a `Result` returned whole with
    /// `errors = value` included).
    Value(&'static str),
    /// `Result<ok, err>`: `ok` on success; `err` as written (empty for an alias that hides
    /// it), reaching the caller as `errors` says.
    Result {
        /// The success type.
        ok: &'static str,
        /// The error type ("" when not written out).
        err: &'static str,
        /// How the error travels.
        errors: ErrorsAs,
    },
    /// A proxy for a new object of another shared type (`method_to_typeid`), named by that
    /// type's name (`Shared::NAME`), which is the new object's typeid; `err` as for
    /// `Result`, `None` when the method cannot fail.
    Shared {
        /// The shared type's name.
        name: &'static str,
        /// The error type and how it travels, for a fallible method.
        err: Option<(&'static str, ErrorsAs)>,
        /// That type's methods ([`methods_of`]), for the server to know the types its
        /// objects' methods share.
        methods: fn() -> &'static [MethodInfo],
    },
}

/// `T`'s exposed methods, as a function (a `method_to_typeid` target's, in [`Returns`]).
pub fn methods_of<T: crate::Shared>() -> &'static [MethodInfo] {
    T::METHODS
}

/// Every shared type reachable from `methods` through `method_to_typeid` results, by name,
/// with its methods (the types a server's objects may share without a registration).
pub fn shared_types(
    methods: &'static [MethodInfo],
    into: &mut std::collections::HashMap<&'static str, &'static [MethodInfo]>,
) {
    for m in methods {
        if let Returns::Shared {
            name, methods: of, ..
        } = m.returns
        {
            if !into.contains_key(name) {
                let found = of();
                into.insert(name, found);
                shared_types(found, into);
            }
        }
    }
}

/// How a typeid is registered on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Registered {
    /// A constructor: each create makes a new object.
    Constructor,
    /// One shared instance: each create gives a reference to it.
    Instance,
}

/// The description of one typeid a server serves: what `client.describe()` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDescription {
    /// The typeid clients create objects by.
    pub typeid: String,
    /// The shared type's name (`Shared::NAME`).
    pub name: String,
    /// Constructor or instance.
    pub registered: Registered,
    /// Whether clients may create objects of it (`create_method`).
    pub create_method: bool,
    /// Its exposed methods, in order.
    pub methods: Vec<MethodDescription>,
}

/// The description of one exposed method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDescription {
    /// The method's name, as called over the wire.
    pub name: String,
    /// Whether it takes `&mut self` (calls are serialised) rather than `&self`.
    pub exclusive: bool,
    /// Whether it is an `async fn`.
    pub is_async: bool,
    /// Its parameters: name and Rust type as written.
    pub params: Vec<(String, String)>,
    /// What it returns.
    pub returns: ReturnDescription,
    /// Its doc comment.
    pub doc: String,
    /// Its fingerprint ([`method_fingerprint`]): what a client's idea of the method must
    /// match.
    pub fingerprint: u64,
}

/// The owned form of [`Returns`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnDescription {
    /// Nothing.
    Unit,
    /// A value of this type.
    Value(String),
    /// `Result<ok, err>`, the error travelling as `errors` says.
    Result {
        /// The success type.
        ok: String,
        /// The error type ("" when not written out).
        err: String,
        /// How the error travels.
        errors: ErrorsAs,
    },
    /// A proxy for a new object of the shared type of this name.
    Shared {
        /// The shared type's name.
        name: String,
        /// The error type and how it travels, for a fallible method.
        err: Option<(String, ErrorsAs)>,
    },
}

impl From<Returns> for ReturnDescription {
    fn from(returns: Returns) -> Self {
        match returns {
            Returns::Unit => ReturnDescription::Unit,
            Returns::Value(ty) => ReturnDescription::Value(ty.to_owned()),
            Returns::Result { ok, err, errors } => ReturnDescription::Result {
                ok: ok.to_owned(),
                err: err.to_owned(),
                errors,
            },
            Returns::Shared { name, err, .. } => ReturnDescription::Shared {
                name: name.to_owned(),
                err: err.map(|(e, how)| (e.to_owned(), how)),
            },
        }
    }
}

impl From<&MethodInfo> for MethodDescription {
    fn from(info: &MethodInfo) -> Self {
        MethodDescription {
            name: info.name.to_owned(),
            exclusive: info.receiver == Receiver::Mut,
            is_async: info.is_async,
            params: info
                .params
                .iter()
                .map(|p| (p.name.to_owned(), p.ty.to_owned()))
                .collect(),
            returns: info.returns.into(),
            doc: info.doc.to_owned(),
            fingerprint: method_fingerprint(info),
        }
    }
}

impl TypeDescription {
    /// The description as Markdown: a section with the type's facts and a table of its
    /// methods, then each method's docs.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let how = match self.registered {
            Registered::Constructor => "a new object per create",
            Registered::Instance => "one shared instance",
        };
        let _ = writeln!(out, "## `{}`\n", self.typeid);
        let _ = writeln!(
            out,
            "Type `{}`; {how}; {}.\n",
            self.name,
            if self.create_method {
                "clients may create it"
            } else {
                "clients may not create it (no create method)"
            }
        );
        if self.methods.is_empty() {
            out.push_str("No exposed methods.\n");
            return out;
        }
        out.push_str("| method | receiver | parameters | returns |\n| --- | --- | --- | --- |\n");
        for m in &self.methods {
            let params: Vec<String> = m.params.iter().map(|(n, t)| format!("{n}: {t}")).collect();
            let params = if params.is_empty() {
                String::new()
            } else {
                format!("`{}`", params.join(", ").replace('|', "\\|"))
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}{}` | {params} | {} |",
                m.name,
                if m.is_async { "async " } else { "" },
                if m.exclusive { "&mut self" } else { "&self" },
                m.returns.to_markdown()
            );
        }
        for m in self.methods.iter().filter(|m| !m.doc.is_empty()) {
            let _ = writeln!(out, "\n### `{}`\n\n{}", m.name, m.doc);
        }
        out
    }
}

impl ReturnDescription {
    fn to_markdown(&self) -> String {
        let errors = |how: &ErrorsAs| match how {
            ErrorsAs::Text => "as text",
            ErrorsAs::Typed => "typed",
        };
        match self {
            ReturnDescription::Unit => "`()`".to_owned(),
            ReturnDescription::Value(ty) => format!("`{}`", ty.replace('|', "\\|")),
            ReturnDescription::Result {
                ok,
                err,
                errors: how,
            } => {
                let err = if err.is_empty() { "its error" } else { err };
                format!("`{ok}`, or `{err}` ({})", errors(how))
            }
            ReturnDescription::Shared { name, err } => match err {
                None => format!("a proxy for a new `{name}`"),
                Some((err, how)) => {
                    format!("a proxy for a new `{name}`, or `{err}` ({})", errors(how))
                }
            },
        }
    }
}

/// A stable fingerprint of a method's signature as the wire sees it: its name, receiver,
/// parameter types and return type as written (not the parameter names, not the docs, not
/// whether it is `async`). Two builds agree on it exactly when they declare the method the
/// same way; FNV-1a, so it is the same on every platform and Rust version.
pub fn method_fingerprint(info: &MethodInfo) -> u64 {
    let mut hash = Fnv::new();
    hash.text(info.name);
    hash.byte(match info.receiver {
        Receiver::Ref => 0,
        Receiver::Mut => 1,
    });
    for p in info.params {
        hash.text(p.ty);
    }
    hash.byte(0xff);
    match info.returns {
        Returns::Unit => hash.byte(0),
        Returns::Value(ty) => {
            hash.byte(1);
            hash.text(ty);
        }
        Returns::Result { ok, err, errors } => {
            hash.byte(2);
            hash.text(ok);
            hash.text(err);
            hash.byte(errors as u8);
        }
        Returns::Shared { name, err, .. } => {
            hash.byte(3);
            hash.text(name);
            if let Some((err, errors)) = err {
                hash.text(err);
                hash.byte(errors as u8);
            }
        }
    }
    hash.0
}

/// How one method of a client's type compares with the server's (see [`compare`]).
pub fn compare<'a>(
    client: impl IntoIterator<Item = (&'a str, u64)>,
    server: &[MethodInfo],
) -> Vec<String> {
    let mut differ = Vec::new();
    for (name, fingerprint) in client {
        match server.iter().find(|m| m.name == name) {
            None => differ.push(format!("`{name}` is not a method of the server's type")),
            Some(m) if method_fingerprint(m) != fingerprint => {
                differ.push(format!("`{name}` has another signature on the server"))
            }
            Some(_) => {}
        }
    }
    differ
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Length-prefixed, so that `("ab", "c")` and `("a", "bc")` differ.
    fn text(&mut self, text: &str) {
        for b in (text.len() as u64).to_le_bytes() {
            self.byte(b);
        }
        for b in text.bytes() {
            self.byte(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn info(name: &'static str, ty: &'static str, returns: Returns) -> MethodInfo {
        MethodInfo {
            name,
            receiver: Receiver::Ref,
            is_async: false,
            doc: "",
            params: if ty.is_empty() {
                &[]
            } else {
                &[Param {
                    name: "x",
                    ty: "i64",
                }]
            },
            returns,
        }
    }

    #[test]
    fn fingerprints_change_with_the_signature_and_only_with_it() {
        let base = info("get", "i64", Returns::Value("u64"));
        let fp = method_fingerprint(&base);
        assert_eq!(fp, method_fingerprint(&base), "stable");
        let mut documented = base;
        documented.doc = "docs do not count";
        documented.is_async = true;
        assert_eq!(fp, method_fingerprint(&documented));
        let mut renamed_param = base;
        renamed_param.params = &[Param {
            name: "y",
            ty: "i64",
        }];
        assert_eq!(
            fp,
            method_fingerprint(&renamed_param),
            "parameter names do not count"
        );
        for other in [
            info("got", "i64", Returns::Value("u64")),
            info("get", "", Returns::Value("u64")),
            info("get", "i64", Returns::Value("u32")),
            info("get", "i64", Returns::Unit),
            info(
                "get",
                "i64",
                Returns::Result {
                    ok: "u64",
                    err: "E",
                    errors: ErrorsAs::Text,
                },
            ),
        ] {
            assert_ne!(fp, method_fingerprint(&other), "{other:?}");
        }
        let mut exclusive = base;
        exclusive.receiver = Receiver::Mut;
        assert_ne!(fp, method_fingerprint(&exclusive));
        let typed = info(
            "get",
            "i64",
            Returns::Result {
                ok: "u64",
                err: "E",
                errors: ErrorsAs::Typed,
            },
        );
        let text = info(
            "get",
            "i64",
            Returns::Result {
                ok: "u64",
                err: "E",
                errors: ErrorsAs::Text,
            },
        );
        assert_ne!(method_fingerprint(&typed), method_fingerprint(&text));
    }

    #[test]
    fn an_older_client_missing_a_method_is_compatible_a_changed_one_is_not() {
        let server = [
            info("get", "i64", Returns::Value("u64")),
            info("added", "", Returns::Unit),
        ];
        let same = [("get", method_fingerprint(&server[0]))];
        assert!(compare(same, &server).is_empty());
        let changed = [(
            "get",
            method_fingerprint(&info("get", "i64", Returns::Value("u32"))),
        )];
        assert_eq!(
            compare(changed, &server),
            ["`get` has another signature on the server"]
        );
        let unknown = [("gone", 1)];
        assert_eq!(
            compare(unknown, &server),
            ["`gone` is not a method of the server's type"]
        );
    }
}
