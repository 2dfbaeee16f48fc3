//! Semantic checks, separate from parsing: everything Python would only find at run time.

use std::collections::HashSet;

use syn::{Error, Type};

use crate::model::{Method, Output, ReceiverKind, SharedImpl};

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

pub(crate) fn check(model: &SharedImpl) -> syn::Result<()> {
    let mut errors = Errors::default();
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
    if let (Some(name), Some(custom)) = (&model.proxy_arg, &model.custom_proxy) {
        let mut e = Error::new_spanned(
            name,
            "`proxy` names the generated proxy, but `custom_proxy` replaces it: give one of them",
        );
        e.combine(Error::new_spanned(custom, "`custom_proxy` given here"));
        errors.push(e);
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
    let ret = match &m.output {
        Output::Unit => None,
        Output::Value(t) | Output::Fallible(t) => Some(t),
    };
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
