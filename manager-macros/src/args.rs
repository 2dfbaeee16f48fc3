//! The attribute's arguments: `#[shared(exposed = [..], name = "..", proxy = Name,
//! method_to_typeid = { method: Type }, errors = typed, ..)]`, and `#[shared(errors = ..)]`
//! on one method.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

/// One `method: Type` entry of `method_to_typeid`.
pub(crate) struct TypeidMapping {
    pub(crate) method: Ident,
    pub(crate) target: syn::Path,
}

impl syn::parse::Parse for TypeidMapping {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let method = input.parse()?;
        input.parse::<Token![:]>()?;
        let target = input.parse()?;
        Ok(Self { method, target })
    }
}

/// How a method's `Err` reaches the caller: `errors = typed`, `display` or `value`.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) enum ErrorMode {
    /// `Err(e)` travels as `e.to_string()` (`RemoteError::Method`).
    #[default]
    Display,
    /// `Err(e)` travels encoded and the proxy returns it typed (`CallError::Method(e)`).
    Typed,
    /// The `Result` is the method's value: the proxy returns it whole, `Ok(Err(e))` for
    /// the method's error (as tarpc does).
    Value,
}

/// `errors = typed | display`, as given (the span of the whole argument, for errors).
#[derive(Clone)]
pub(crate) struct Errors {
    pub(crate) mode: ErrorMode,
    pub(crate) path: syn::Path,
}

fn parse_errors(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Errors> {
    let value: Ident = meta.value()?.parse()?;
    let mode = if value == "typed" {
        ErrorMode::Typed
    } else if value == "display" {
        ErrorMode::Display
    } else if value == "value" {
        ErrorMode::Value
    } else {
        return Err(syn::Error::new(
            value.span(),
            "expected `errors = typed` (the proxy returns the method's error type), \
             `errors = display` (the error travels as its `Display` text) or `errors = value` \
             (the `Result` is the method's value)",
        ));
    };
    Ok(Errors {
        mode,
        path: meta.path.clone(),
    })
}

/// The arguments of `#[shared(..)]` on one method inside a `#[shared]` impl block: only
/// `errors = ..`.
pub(crate) fn parse_method(attr: &syn::Attribute) -> syn::Result<Errors> {
    let mut errors = None;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("errors") {
            if errors.is_some() {
                return Err(duplicate(&meta, "errors"));
            }
            errors = Some(parse_errors(&meta)?);
            Ok(())
        } else {
            Err(meta
                .error("on a method, #[shared] takes only `errors = typed` or `errors = display`"))
        }
    })?;
    errors.ok_or_else(|| {
        syn::Error::new_spanned(
            attr,
            "on a method, #[shared] takes `errors = typed`, `errors = display` or \
             `errors = value`",
        )
    })
}

/// The parsed attribute.
#[derive(Default)]
pub(crate) struct Args {
    /// `exposed = [a, b]`: `None` means every public method.
    pub(crate) exposed: Option<Vec<Ident>>,
    /// `name = "Pair"`: the shared type's name (`Shared::NAME`).
    pub(crate) name: Option<LitStr>,
    /// `proxy = PairProxy`: the generated proxy's name.
    pub(crate) proxy: Option<Ident>,
    /// `method_to_typeid = { get_item: ItemWrapper }`.
    pub(crate) method_to_typeid: Option<(syn::Path, Vec<TypeidMapping>)>,
    /// `custom_proxy = MyProxy`: a hand-written proxy replaces the generated one.
    pub(crate) custom_proxy: Option<syn::Path>,
    /// `get_value`: generate Python's `_getvalue()` (needs `Serialize + Deserialize`).
    pub(crate) get_value: Option<syn::Path>,
    /// `async_holds_lock`: an `async` method may hold the object's lock while it waits, on
    /// purpose (see the check in `validate`).
    pub(crate) async_holds_lock: Option<syn::Path>,
    /// `errors = typed | display`: how the methods' `Err` reaches the caller.
    pub(crate) errors: Option<Errors>,
}

fn duplicate(meta: &syn::meta::ParseNestedMeta<'_>, name: &str) -> syn::Error {
    meta.error(format!("duplicate `{name}` argument"))
}

pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("exposed") {
            if args.exposed.is_some() {
                return Err(duplicate(&meta, "exposed"));
            }
            let value = meta.value()?;
            let content;
            syn::bracketed!(content in value);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            args.exposed = Some(names.into_iter().collect());
        } else if meta.path.is_ident("typeid") {
            return Err(meta.error(
                "#[shared] names the type with `name = \"..\"`; a typeid is the name clients \
                 create objects by, given by a `Registration` (or a `manager!` method)",
            ));
        } else if meta.path.is_ident("name") {
            if args.name.is_some() {
                return Err(duplicate(&meta, "name"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(lit.span(), "the name must not be empty"));
            }
            args.name = Some(lit);
        } else if meta.path.is_ident("proxy") {
            if args.proxy.is_some() {
                return Err(duplicate(&meta, "proxy"));
            }
            args.proxy = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("method_to_typeid") {
            if args.method_to_typeid.is_some() {
                return Err(duplicate(&meta, "method_to_typeid"));
            }
            let value = meta.value()?;
            let content;
            syn::braced!(content in value);
            let entries = Punctuated::<TypeidMapping, Token![,]>::parse_terminated(&content)?;
            args.method_to_typeid = Some((meta.path.clone(), entries.into_iter().collect()));
        } else if meta.path.is_ident("custom_proxy") {
            if args.custom_proxy.is_some() {
                return Err(duplicate(&meta, "custom_proxy"));
            }
            args.custom_proxy = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("async_holds_lock") {
            if args.async_holds_lock.is_some() {
                return Err(duplicate(&meta, "async_holds_lock"));
            }
            args.async_holds_lock = Some(meta.path.clone());
        } else if meta.path.is_ident("errors") {
            if args.errors.is_some() {
                return Err(duplicate(&meta, "errors"));
            }
            args.errors = Some(parse_errors(&meta)?);
        } else if meta.path.is_ident("get_value") {
            if args.get_value.is_some() {
                return Err(duplicate(&meta, "get_value"));
            }
            args.get_value = Some(meta.path.clone());
        } else {
            return Err(meta.error(
                "unknown #[shared] argument; expected `exposed`, `name`, `proxy`, \
                 `custom_proxy`, `method_to_typeid`, `errors`, `get_value` or \
                 `async_holds_lock`",
            ));
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    Ok(args)
}

/// The arguments of `#[derive(Proxy)]`: `#[proxy(target = Type, clone, debug, deref)]` on
/// the struct.
#[derive(Default)]
pub(crate) struct ProxyArgs {
    /// `target = Type`: the shared type the proxy calls.
    pub(crate) target: Option<syn::Path>,
    /// `clone`: implement `Clone` field by field, with no bounds on type parameters.
    pub(crate) clone: Option<syn::Path>,
    /// `debug`: implement `Debug` as the inner proxy's (the referent's typeid and token).
    pub(crate) debug: Option<syn::Path>,
    /// `deref`: `Deref` to the inner proxy, so its methods are the wrapper's too.
    pub(crate) deref: Option<syn::Path>,
}

pub(crate) fn parse_proxy(attrs: &[syn::Attribute]) -> syn::Result<ProxyArgs> {
    let mut args = ProxyArgs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("proxy")) {
        attr.parse_nested_meta(|meta| {
            let flag = |slot: &mut Option<syn::Path>, name: &str| {
                if slot.is_some() {
                    return Err(duplicate(&meta, name));
                }
                *slot = Some(meta.path.clone());
                Ok(())
            };
            if meta.path.is_ident("target") {
                if args.target.is_some() {
                    return Err(duplicate(&meta, "target"));
                }
                args.target = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("clone") {
                flag(&mut args.clone, "clone")
            } else if meta.path.is_ident("debug") {
                flag(&mut args.debug, "debug")
            } else if meta.path.is_ident("deref") {
                flag(&mut args.deref, "deref")
            } else {
                Err(meta.error(
                    "unknown #[proxy] argument; expected `target = Type`, `clone`, `debug` or \
                     `deref`",
                ))
            }
        })?;
    }
    Ok(args)
}

/// Whether a field of a `#[derive(Proxy)]` struct is marked `#[proxy(inner)]`.
pub(crate) fn is_marked_inner(attrs: &[syn::Attribute]) -> syn::Result<bool> {
    let mut inner = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("proxy")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("inner") {
                if inner {
                    return Err(duplicate(&meta, "inner"));
                }
                inner = true;
                Ok(())
            } else {
                Err(meta.error(
                    "on a field, #[proxy] takes only `inner` (the proxy or handle it wraps)",
                ))
            }
        })?;
    }
    Ok(inner)
}
