//! A plain model of the `impl` block: no `quote!` here. Each part keeps the syn node it came
//! from, for error spans.

use proc_macro2::Span;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility};

use crate::args::{self, Args, ErrorMode, TypeidMapping};

/// How a method receives `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiverKind {
    /// `&self`.
    Ref,
    /// `&mut self`.
    Mut,
    /// `self`, `mut self`, `self: Box<Self>`...: cannot be called remotely.
    Value,
    /// No receiver: an associated function.
    None,
}

/// What a method returns, as the proxy sees it.
pub(crate) enum Output {
    /// Nothing (`()`).
    Unit,
    /// A value, copied to the caller.
    Value(Type),
    /// `Result<T, E>` (or any `Result<T>` alias, `err` then `None`): `Ok(T)` is returned;
    /// `Err(e)` becomes a remote error carrying `e.to_string()`, or, with `errors = typed`,
    /// `e` itself.
    Fallible { ok: Type, err: Option<Box<Type>> },
}

impl Output {
    /// The type a successful call returns (`None` for `()`).
    pub(crate) fn ok_type(&self) -> Option<&Type> {
        match self {
            Output::Unit => None,
            Output::Value(t) | Output::Fallible { ok: t, .. } => Some(t),
        }
    }
}

/// One parameter (after the receiver).
pub(crate) struct Param {
    /// The proxy's parameter name.
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}

/// One method of the impl block.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    pub(crate) is_pub: bool,
    pub(crate) receiver: ReceiverKind,
    pub(crate) is_async: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) output: Output,
    /// The `#[doc]` attributes, copied onto the proxy method.
    pub(crate) docs: Vec<syn::Attribute>,
    /// `method_to_typeid` target: the shared type its result becomes.
    pub(crate) returns_shared: Option<syn::Path>,
    /// How its `Err` reaches the caller (the impl's `errors`, or its own).
    pub(crate) errors: ErrorMode,
    /// Its own `#[shared(errors = ..)]`, if given.
    pub(crate) errors_attr: Option<args::Errors>,
    /// The original item, for spans.
    pub(crate) item: ImplItemFn,
}

impl Method {
    fn from_syn(item: &ImplItemFn, errors_attr: Option<args::Errors>) -> Self {
        let sig = &item.sig;
        let receiver = match sig.receiver() {
            None => ReceiverKind::None,
            Some(r) if r.reference.is_some() && r.colon_token.is_none() => {
                if r.mutability.is_some() {
                    ReceiverKind::Mut
                } else {
                    ReceiverKind::Ref
                }
            }
            Some(_) => ReceiverKind::Value,
        };
        let params = sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(t) => Some(t),
                FnArg::Receiver(_) => None,
            })
            .enumerate()
            .map(|(i, t)| {
                let name = match &*t.pat {
                    Pat::Ident(p) if p.subpat.is_none() && p.ident != "self" => {
                        Ident::new(&p.ident.to_string(), p.ident.span())
                    }
                    _ => Ident::new(&format!("arg{i}"), Span::call_site()),
                };
                Param {
                    name,
                    ty: (*t.ty).clone(),
                }
            })
            .collect();
        Method {
            ident: sig.ident.clone(),
            is_pub: matches!(item.vis, Visibility::Public(_)),
            receiver,
            is_async: sig.asyncness.is_some(),
            params,
            output: output_of(&sig.output),
            docs: item
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
            returns_shared: None,
            errors: ErrorMode::Display,
            errors_attr,
            item: item.clone(),
        }
    }

    /// The method's rustdoc as one string.
    pub(crate) fn doc_text(&self) -> String {
        let lines: Vec<String> = self
            .docs
            .iter()
            .filter_map(|a| match &a.meta {
                syn::Meta::NameValue(nv) => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(
                        s.value()
                            .strip_prefix(' ')
                            .map(str::to_owned)
                            .unwrap_or_else(|| s.value()),
                    ),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        lines.join("\n")
    }
}

/// Read `-> T`, `-> Result<T, E>` and `-> Result<T>` (an alias).
fn output_of(output: &ReturnType) -> Output {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::Tuple(t) = &**ty {
        if t.elems.is_empty() {
            return Output::Unit;
        }
    }
    if let Type::Path(p) = &**ty {
        if let Some(last) = p.path.segments.last() {
            if last.ident == "Result" {
                if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
                    let mut types = a.args.iter().filter_map(|arg| match arg {
                        syn::GenericArgument::Type(t) => Some(t.clone()),
                        _ => None,
                    });
                    if let Some(ok) = types.next() {
                        return Output::Fallible {
                            ok,
                            err: types.next().map(Box::new),
                        };
                    }
                }
            }
        }
    }
    Output::Value((**ty).clone())
}

/// The whole `#[shared]` input.
pub(crate) struct SharedImpl {
    pub(crate) item: ItemImpl,
    /// The type's last path segment, for names.
    pub(crate) type_ident: Ident,
    /// The shared type's name (`Shared::NAME`).
    pub(crate) name: String,
    pub(crate) proxy_ident: Ident,
    pub(crate) methods: Vec<Method>,
    /// Indexes into `methods` of the exposed ones, in wire order.
    pub(crate) exposed: Vec<usize>,
    /// The names given in `exposed = [...]`, if any (for spans and validation).
    pub(crate) exposed_list: Option<Vec<Ident>>,
    pub(crate) method_to_typeid: Option<(syn::Path, Vec<TypeidMapping>)>,
    /// `custom_proxy = MyProxy`.
    pub(crate) custom_proxy: Option<syn::Path>,
    /// The `proxy = Name` argument: with `custom_proxy`, the typed methods are still
    /// generated, under this name, for the custom proxy to wrap.
    pub(crate) proxy_arg: Option<Ident>,
    /// `get_value` was given (its path, for spans).
    pub(crate) get_value: Option<syn::Path>,
    /// `async_holds_lock` was given.
    pub(crate) async_holds_lock: bool,
    /// The impl's `errors = ..`, if given.
    pub(crate) errors_arg: Option<args::Errors>,
    /// Errors in the methods' own `#[shared(..)]` attributes.
    pub(crate) attr_errors: Option<syn::Error>,
}

impl SharedImpl {
    pub(crate) fn from_syn(
        args: Args,
        item: ItemImpl,
        method_attrs: MethodAttrs,
    ) -> syn::Result<Self> {
        if let Some((_, path, _)) = &item.trait_ {
            return Err(syn::Error::new_spanned(
                path,
                "#[shared] goes on an inherent impl block, not a trait impl",
            ));
        }
        let type_ident = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        }
        .ok_or_else(|| {
            syn::Error::new_spanned(&item.self_ty, "#[shared] needs a named type such as `Pair`")
        })?;
        let mut methods: Vec<Method> = item
            .items
            .iter()
            .filter_map(|i| match i {
                ImplItem::Fn(f) => Some(f),
                _ => None,
            })
            .zip(method_attrs.per_method)
            .map(|(f, errors_attr)| Method::from_syn(f, errors_attr))
            .collect();
        let attr_errors = method_attrs.errors;
        let default_errors = args.errors.as_ref().map_or(ErrorMode::Display, |e| e.mode);
        for m in &mut methods {
            m.errors = m.errors_attr.as_ref().map_or(default_errors, |e| e.mode);
            // `errors = value`: the `Result` is the value, copied whole.
            if let (ErrorMode::Value, Output::Fallible { .. }, ReturnType::Type(_, ty)) =
                (m.errors, &m.output, &m.item.sig.output)
            {
                m.output = Output::Value((**ty).clone());
            }
        }
        let exposed = match &args.exposed {
            // Python's default: every public method whose name does not start with `_`.
            None => methods
                .iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.is_pub
                        && matches!(m.receiver, ReceiverKind::Ref | ReceiverKind::Mut)
                        && !m.ident.to_string().starts_with('_')
                })
                .map(|(i, _)| i)
                .collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| methods.iter().position(|m| m.ident == *n))
                .collect(),
        };
        let name = args
            .name
            .as_ref()
            .map(|l| l.value())
            .unwrap_or_else(|| type_ident.to_string());
        let proxy_ident = args
            .proxy
            .clone()
            .unwrap_or_else(|| Ident::new(&format!("{type_ident}Proxy"), type_ident.span()));
        if let Some((_, entries)) = &args.method_to_typeid {
            for entry in entries {
                if let Some(m) = methods.iter_mut().find(|m| m.ident == entry.method) {
                    m.returns_shared = Some(entry.target.clone());
                }
            }
        }
        Ok(Self {
            item,
            type_ident,
            name,
            proxy_ident,
            methods,
            exposed,
            exposed_list: args.exposed,
            method_to_typeid: args.method_to_typeid,
            custom_proxy: args.custom_proxy,
            proxy_arg: args.proxy,
            get_value: args.get_value,
            async_holds_lock: args.async_holds_lock.is_some(),
            errors_arg: args.errors,
            attr_errors,
        })
    }

    pub(crate) fn exposed_methods(&self) -> impl Iterator<Item = &Method> {
        self.exposed.iter().map(|&i| &self.methods[i])
    }
}

/// The methods' own `#[shared(..)]` attributes, taken out of the impl block.
pub(crate) struct MethodAttrs {
    /// For each `fn` of the block, in order: its `errors = ..`, if given.
    per_method: Vec<Option<args::Errors>>,
    /// What did not parse.
    errors: Option<syn::Error>,
}

/// Take the methods' own `#[shared(..)]` out of `item` (they are this attribute's, not
/// macros of their own), reading them.
pub(crate) fn take_method_attrs(item: &mut ItemImpl) -> MethodAttrs {
    let mut all = MethodAttrs {
        per_method: Vec::new(),
        errors: None,
    };
    for i in &mut item.items {
        let ImplItem::Fn(f) = i else { continue };
        let mut errors_attr = None;
        let mut kept = Vec::with_capacity(f.attrs.len());
        for attr in std::mem::take(&mut f.attrs) {
            if !is_shared_attr(&attr) {
                kept.push(attr);
                continue;
            }
            let parsed = args::parse_method(&attr).and_then(|e| match errors_attr {
                Some(_) => Err(syn::Error::new_spanned(
                    &attr,
                    "a method takes one #[shared(errors = ..)]",
                )),
                None => Ok(e),
            });
            match parsed {
                Ok(e) => errors_attr = Some(e),
                Err(e) => match &mut all.errors {
                    Some(errors) => errors.combine(e),
                    None => all.errors = Some(e),
                },
            }
        }
        f.attrs = kept;
        all.per_method.push(errors_attr);
    }
    all
}

/// `#[shared(..)]` or `#[managers::shared(..)]` on a method.
fn is_shared_attr(attr: &syn::Attribute) -> bool {
    let path = attr.path();
    path.is_ident("shared")
        || (path.segments.len() == 2
            && path.segments[0].ident == "managers"
            && path.segments[1].ident == "shared")
}

/// One field of a `#[derive(Proxy)]` struct.
pub(crate) struct ProxyField {
    /// `name` or `0`.
    pub(crate) member: syn::Member,
    pub(crate) ty: Type,
    /// Marked `#[proxy(inner)]`.
    pub(crate) marked_inner: bool,
    /// Its type is `ProxyHandle`.
    pub(crate) is_handle: bool,
    /// The field, for spans.
    pub(crate) span: Span,
}

/// A `#[derive(Proxy)]` struct: a hand-written proxy wrapping a handle or another proxy.
pub(crate) struct ProxyStruct {
    pub(crate) ident: Ident,
    pub(crate) generics: syn::Generics,
    pub(crate) args: args::ProxyArgs,
    pub(crate) fields: Vec<ProxyField>,
}

impl ProxyStruct {
    pub(crate) fn from_syn(input: syn::DeriveInput) -> syn::Result<Self> {
        let args = args::parse_proxy(&input.attrs)?;
        let syn::Data::Struct(data) = input.data else {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "#[derive(Proxy)] needs a struct",
            ));
        };
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let member = match &f.ident {
                    Some(name) => syn::Member::Named(name.clone()),
                    None => syn::Member::Unnamed(syn::Index::from(i)),
                };
                let is_handle = matches!(&f.ty, Type::Path(p)
                    if p.path.segments.last().is_some_and(|s| s.ident == "ProxyHandle"));
                Ok(ProxyField {
                    member,
                    ty: f.ty.clone(),
                    marked_inner: args::is_marked_inner(&f.attrs)?,
                    is_handle,
                    span: syn::spanned::Spanned::span(f),
                })
            })
            .collect::<syn::Result<_>>()?;
        Ok(Self {
            ident: input.ident,
            generics: input.generics,
            args,
            fields,
        })
    }

    /// The field the proxy wraps: the one marked `#[proxy(inner)]`, else the one
    /// `ProxyHandle` (validation checks there is exactly one).
    pub(crate) fn inner(&self) -> Option<&ProxyField> {
        let marked: Vec<&ProxyField> = self.fields.iter().filter(|f| f.marked_inner).collect();
        match marked[..] {
            [one] => Some(one),
            [] => match self
                .fields
                .iter()
                .filter(|f| f.is_handle)
                .collect::<Vec<_>>()[..]
            {
                [one] => Some(one),
                _ => None,
            },
            _ => None,
        }
    }
}
