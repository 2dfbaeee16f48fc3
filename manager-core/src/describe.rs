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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    },
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
            Returns::Shared { name, err } => ReturnDescription::Shared {
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
