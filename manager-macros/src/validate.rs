//! Semantic checks, separate from parsing: everything Python would only find at run time.

use std::collections::HashSet;

use syn::{Error, Type};

use crate::args::ErrorMode;
use crate::model::{Method, Output, ProxyStruct, ReceiverKind, SharedImpl};

/// Names the generated proxy defines itself.
const RESERVED: &[&str] = &["handle", "from_handle", "referent_to_string"];

/// Collects every error instead of stopping at the first.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// An `async` method that would hold the object's lock while it waits: the object has a
/// `&mut self` method, so it sits behind a read-write lock, and an `async fn(&self)` keeps
/// the read lock (an `async fn(&mut self)`, the write lock) across its awaits. While it
/// waits, every `&mut self` method of the object (and, for a `&mut self` one, every method)
/// waits too: with no error anywhere, only late answers.
fn check_async_locking(model: &SharedImpl, errors: &mut Errors) {
    if model.async_holds_lock {
        return;
    }
    let exposed: Vec<&Method> = model.exposed_methods().collect();
    let Some(writer) = exposed
        .iter()
        .find(|m| matches!(m.receiver, ReceiverKind::Mut))
    else {
        return;
    };
    for m in exposed.iter().filter(|m| m.is_async) {
        let holds = match m.receiver {
            ReceiverKind::Ref => "the object's read lock, so every `&mut self` method (such as",
            ReceiverKind::Mut => "the object's write lock, so every other method (such as",
            _ => continue,
        };
        errors.push(Error::new_spanned(
            m.item.sig.fn_token,
            format!(
                "`{name}` is `async` on a type with `&mut self` methods: while it waits it \
                 holds {holds} `{writer}`) waits for it, and other clients' calls stall with \
                 no error.\n\
                 help: keep the object's state behind interior mutability (a `Mutex`, atomics, \
                 `tokio::sync` primitives, as `managers::sync` does) and make every method \
                 take `&self`; then an `async` method holds no lock while it waits\n\
                 help: or, if holding the lock while waiting is what you want, say so with \
                 `#[shared(async_holds_lock)]`",
                name = m.ident,
                writer = writer.ident,
            ),
        ));
    }
}

pub(crate) fn check(model: &SharedImpl) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(e) = &model.attr_errors {
        errors.push(e.clone());
    }
    check_async_locking(model, &mut errors);
    if let Some(arg) = &model.errors_arg {
        let fallible = model
            .exposed_methods()
            .any(|m| matches!(m.output, Output::Fallible { .. }));
        if arg.mode == ErrorMode::Typed && !fallible {
            errors.push(Error::new_spanned(
                &arg.path,
                "`errors = typed` applies to methods returning `Result<T, E>`, and no exposed method does",
            ));
        }
    }
    for (i, m) in model.methods.iter().enumerate() {
        if let (Some(attr), false) = (&m.errors_attr, model.exposed.contains(&i)) {
            errors.push(Error::new_spanned(
                &attr.path,
                format!(
                    "`{}` is not exposed, so how its errors travel does not apply",
                    m.ident
                ),
            ));
        }
    }
    let item = &model.item;
    if !item.generics.params.is_empty() {
        errors.push(Error::new_spanned(
            &item.generics,
            "#[shared] does not support generic impl blocks; share a concrete type",
        ));
    }
    if let Some(list) = &model.exposed_list {
        let mut seen = HashSet::new();
        for name in list {
            if !seen.insert(name.to_string()) {
                errors.push(Error::new_spanned(
                    name,
                    format!("`{name}` is listed twice in `exposed`"),
                ));
                continue;
            }
            match model.methods.iter().find(|m| m.ident == *name) {
                None => errors.push(Error::new_spanned(
                    name,
                    format!("`exposed` names `{name}`, but this impl block has no method `{name}`"),
                )),
                Some(m) if !m.is_pub => errors.push(Error::new_spanned(
                    name,
                    format!("`{name}` is private; only `pub` methods can be exposed"),
                )),
                Some(_) => {}
            }
        }
    }
    if let Some((_, entries)) = &model.method_to_typeid {
        let mut seen = HashSet::new();
        for entry in entries {
            if !seen.insert(entry.method.to_string()) {
                errors.push(Error::new_spanned(
                    &entry.method,
                    format!("`{}` is mapped twice in `method_to_typeid`", entry.method),
                ));
            }
            if !model.exposed_methods().any(|m| m.ident == entry.method) {
                errors.push(Error::new_spanned(
                    &entry.method,
                    format!(
                        "`method_to_typeid` names `{}`, which is not an exposed method",
                        entry.method
                    ),
                ));
            }
        }
    }
    if let Some(path) = &model.get_value {
        if model.exposed_methods().any(|m| m.ident == "get_value") {
            errors.push(Error::new_spanned(
                path,
                "`get_value` generates a proxy method `get_value`, and this type already exposes one",
            ));
        }
    }
    for method in model.exposed_methods() {
        check_method(method, &mut errors);
    }
    errors.finish()
}

fn check_method(m: &Method, errors: &mut Errors) {
    let sig = &m.item.sig;
    let name = &m.ident;
    if RESERVED.contains(&name.to_string().as_str()) {
        errors.push(Error::new_spanned(
            name,
            format!("method name `{name}` conflicts with a method of the generated proxy"),
        ));
    }
    match m.receiver {
        ReceiverKind::Ref | ReceiverKind::Mut => {}
        ReceiverKind::Value => errors.push(Error::new_spanned(
            sig.receiver(),
            format!("exposed method `{name}` takes `self` by value; a shared object can only be borrowed (`&self` or `&mut self`)"),
        )),
        ReceiverKind::None => errors.push(Error::new_spanned(
            &sig.ident,
            format!("exposed method `{name}` has no `self`; only methods taking `&self` or `&mut self` can be exposed"),
        )),
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(
            &sig.generics,
            format!("exposed method `{name}` is generic; a remote call needs concrete argument and return types"),
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(Error::new_spanned(v, "variadic methods cannot be exposed"));
    }
    for p in &m.params {
        check_param_type(&p.ty, errors);
    }
    let fallible = matches!(m.output, Output::Fallible { .. });
    if let (Some(attr), false) = (&m.errors_attr, fallible || m.errors == ErrorMode::Value) {
        errors.push(Error::new_spanned(
            &attr.path,
            format!(
                "`errors = ..` applies to methods returning `Result<T, E>`, and `{name}` does not"
            ),
        ));
    }
    if let (ErrorMode::Typed, Output::Fallible { err: None, .. }) = (m.errors, &m.output) {
        errors.push(Error::new_spanned(
            &sig.output,
            format!(
                "with `errors = typed`, write the error type of `{name}` out, as in \
                 `Result<T, MyError>`: the proxy returns it, and a `Result<T>` alias hides it\n\
                 help: or give the method `#[shared(errors = display)]` to send the error's \
                 text"
            ),
        ));
    }
    let ret = m.output.ok_type();
    if let (Some(target), None) = (&m.returns_shared, ret) {
        errors.push(Error::new_spanned(
            target,
            format!("`method_to_typeid` maps `{name}`, but it returns nothing to share"),
        ));
    }
    if let Some(borrowed) = ret.and_then(find_borrow_or_impl) {
        errors.push(Error::new_spanned(
            borrowed,
            "an exposed method must return an owned value (no references or `impl Trait`): the result is copied to the caller",
        ));
    }
}

fn check_param_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => errors.push(Error::new_spanned(
            ty,
            "an exposed method cannot take `&mut` arguments: arguments are copied from the caller",
        )),
        Type::ImplTrait(_) => errors.push(Error::new_spanned(
            ty,
            "an exposed method cannot take `impl Trait` arguments: they need a concrete type",
        )),
        _ => {}
    }
}

/// The part of a return type that cannot be copied to the caller, if any: a reference or
/// `impl Trait` anywhere in it (`&str`, `Option<&str>`), or an unsized trait object or slice.
fn find_borrow_or_impl(ty: &Type) -> Option<&Type> {
    match ty {
        Type::TraitObject(_) | Type::Slice(_) => Some(ty),
        _ => find_borrow(ty),
    }
}

/// A reference or `impl Trait` in `ty`, including generic arguments. Trait objects and slices
/// behind a pointer (`Box<dyn Trait>`, `Box<[T]>`) are owned, so only `find_borrow_or_impl`
/// rejects them, at the top level.
fn find_borrow(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(_) | Type::ImplTrait(_) => Some(ty),
        Type::Tuple(t) => t.elems.iter().find_map(find_borrow_or_impl),
        Type::Array(a) => find_borrow_or_impl(&a.elem),
        Type::Paren(p) => find_borrow_or_impl(&p.elem),
        Type::Group(g) => find_borrow_or_impl(&g.elem),
        Type::Path(p) => p
            .path
            .segments
            .iter()
            .filter_map(|s| match &s.arguments {
                syn::PathArguments::AngleBracketed(a) => Some(a),
                _ => None,
            })
            .flat_map(|a| &a.args)
            .find_map(|arg| match arg {
                syn::GenericArgument::Type(t) => find_borrow(t),
                _ => None,
            }),
        _ => None,
    }
}

/// Checks of a `#[derive(Proxy)]` struct.
pub(crate) fn check_proxy(model: &ProxyStruct) -> syn::Result<()> {
    let mut errors = Errors::default();
    if model.args.target.is_none() {
        errors.push(Error::new_spanned(
            &model.ident,
            "name the shared type this proxy calls: #[proxy(target = Type)]",
        ));
    }
    for param in &model.generics.params {
        if !matches!(param, syn::GenericParam::Type(_)) {
            errors.push(Error::new_spanned(
                param,
                "a proxy type can have type parameters only: a proxy is an owned value, with \
                 no borrow or constant in its type",
            ));
        }
    }
    let marked: Vec<_> = model.fields.iter().filter(|f| f.marked_inner).collect();
    if let [_, second, ..] = marked[..] {
        errors.push(Error::new(
            second.span,
            "only one field can be `#[proxy(inner)]`: the proxy or handle this proxy wraps",
        ));
    } else if model.inner().is_none() {
        errors.push(Error::new_spanned(
            &model.ident,
            "a proxy struct wraps exactly one field: a `managers::ProxyHandle`, or a proxy \
             (such as one `#[shared(proxy = ..)]` generates) marked `#[proxy(inner)]`",
        ));
    }
    errors.finish()
}
