//! The server side: `impl Shared for T`, the dispatch table.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::LitStr;

use crate::args::ErrorMode;
use crate::model::{Method, Output, ReceiverKind, SharedImpl};

pub(crate) fn shared_impl(model: &SharedImpl) -> TokenStream {
    let self_ty = &model.item.self_ty;
    let shared_name = LitStr::new(&model.name, model.type_ident.span());
    let mut infos: Vec<TokenStream> = model.exposed_methods().map(method_info).collect();
    let getvalue_index = model.exposed.len();
    let self_name = super::type_text(self_ty);
    let getvalue_arm = model.get_value.as_ref().map(|_| {
        infos.push(quote! {
            __p::MethodInfo {
                name: "#getvalue",
                receiver: __p::Receiver::Ref,
                is_async: false,
                doc: "A copy of the object (Python's `_getvalue()`).",
                params: &[],
                returns: __p::describe::Returns::Value(#self_name),
            }
        });
        quote! {
            #getvalue_index => __p::CallOutcome::Ready(__p::encode_value(__codec, "#getvalue", self)),
        }
    });
    let getvalue_waiting_arm = model.get_value.as_ref().map(|_| {
        quote! {
            #getvalue_index => __p::CallOutcome::Pending(__p::Box::pin(async move {
                let __guard = __object.shared().await;
                __p::encode_value(__codec, "#getvalue", &**__guard)
            })),
        }
    });
    let asserts = model.exposed_methods().filter_map(|m| {
        let target = m.returns_shared.as_ref()?;
        Some(quote_spanned! {target.span()=>
            __p::generated::assert_shared::<#target>();
        })
    });
    let hidden = model
        .methods
        .iter()
        .enumerate()
        .filter(|(i, _)| !model.exposed.contains(i))
        .map(|(_, m)| wire_name(m));
    let ref_arms = model
        .exposed_methods()
        .enumerate()
        .map(|(i, m)| match m.receiver {
            ReceiverKind::Mut => {
                let name = wire_name(m);
                quote! {
                    #i => __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::wrong_receiver(<Self as __p::Shared>::NAME, #name)
                    )),
                }
            }
            _ => call_arm(i, m),
        });
    let mut_arms = model
        .exposed_methods()
        .enumerate()
        .map(|(i, m)| call_arm(i, m));
    let waiting_arms = model
        .exposed_methods()
        .enumerate()
        .map(|(i, m)| waiting_arm(i, m));
    quote! {
        use ::managers::__private as __p;
        // `method_to_typeid` targets must be shared types (an error here points at them).
        const _: fn() = || {
            #(#asserts)*
        };
        #[automatically_derived]
        impl __p::Shared for #self_ty {
            const NAME: &'static str = #shared_name;
            const METHODS: &'static [__p::MethodInfo] = &[#(#infos),*];
            const HIDDEN: &'static [&'static str] = &[#(#hidden),*];

            #[allow(unused_variables, clippy::let_unit_value, clippy::unit_arg)]
            fn call_ref<'__a>(
                &'__a self,
                __method: usize,
                __args: &'__a [u8],
                __codec: __p::Codec,
            ) -> __p::CallOutcome<'__a> {
                match __method {
                    #(#ref_arms)*
                    #getvalue_arm
                    _ => __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::unknown_method_index(<Self as __p::Shared>::NAME, __method),
                    )),
                }
            }

            #[allow(unused_variables, clippy::let_unit_value, clippy::unit_arg)]
            fn call_mut<'__a>(
                &'__a mut self,
                __method: usize,
                __args: &'__a [u8],
                __codec: __p::Codec,
            ) -> __p::CallOutcome<'__a> {
                match __method {
                    #(#mut_arms)*
                    #getvalue_arm
                    _ => __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::unknown_method_index(<Self as __p::Shared>::NAME, __method),
                    )),
                }
            }

            #[allow(unused_variables, clippy::let_unit_value, clippy::unit_arg)]
            fn call_waiting<'__a>(
                __object: __p::Waiting<'__a, Self>,
                __method: usize,
                __args: &'__a [u8],
                __codec: __p::Codec,
            ) -> __p::CallOutcome<'__a> {
                match __method {
                    #(#waiting_arms)*
                    #getvalue_waiting_arm
                    _ => __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::unknown_method_index(<Self as __p::Shared>::NAME, __method),
                    )),
                }
            }

            #[allow(clippy::needless_borrow)] // the borrow selects the `Display` impl
            fn display(&self) -> ::core::option::Option<::std::string::String> {
                #[allow(unused_imports)]
                use __p::{DisplayFallback as _, DisplayViaTrait as _};
                (&__p::Unsupported(self)).shared_display()
            }
        }
    }
}

/// For each exposed method returning a plain value: a `Result` under another name does
/// not compile (see `generated::ReturnProbe`). In an inherent impl, where `Self` is the
/// type, as in the signatures.
pub(crate) fn return_checks(model: &SharedImpl) -> TokenStream {
    let probes: Vec<TokenStream> = model
        .exposed_methods()
        .filter_map(|m| match &m.output {
            Output::Value(ty) if m.errors != ErrorMode::Value => Some(quote_spanned! {ty.span()=>
                <::managers::__private::generated::ReturnProbe<#ty> as ::core::default::Default>::default().plain_value();
            }),
            _ => None,
        })
        .collect();
    if probes.is_empty() {
        return TokenStream::new();
    }
    let self_ty = &model.item.self_ty;
    quote! {
        impl #self_ty {
            #[doc(hidden)]
            #[allow(dead_code, non_snake_case)]
            fn __managers_return_checks() {
                #[allow(unused_imports)]
                use ::managers::__private::generated::PlainValue as _;
                #(#probes)*
            }
        }
    }
}

/// The method's name on the wire (without `r#`).
pub(crate) fn wire_name(m: &Method) -> LitStr {
    LitStr::new(&m.ident.unraw().to_string(), m.ident.span())
}

fn method_info(m: &Method) -> TokenStream {
    let name = wire_name(m);
    let receiver = match m.receiver {
        ReceiverKind::Mut => quote!(__p::Receiver::Mut),
        _ => quote!(__p::Receiver::Ref),
    };
    let is_async = m.is_async;
    let doc = m.doc_text();
    let params = m.params.iter().map(|p| {
        let (n, t) = (p.name.to_string(), super::type_text(&p.ty));
        quote!(__p::describe::Param { name: #n, ty: #t })
    });
    let errors = match m.errors {
        ErrorMode::Typed => quote!(__p::describe::ErrorsAs::Typed),
        _ => quote!(__p::describe::ErrorsAs::Text),
    };
    let returns = match (&m.output, &m.returns_shared) {
        (Output::Unit, _) => quote!(__p::describe::Returns::Unit),
        (Output::Value(t), None) => {
            let t = super::type_text(t);
            quote!(__p::describe::Returns::Value(#t))
        }
        (Output::Fallible { ok, err }, None) => {
            let ok = super::type_text(ok);
            let err = err.as_deref().map(super::type_text).unwrap_or_default();
            quote!(__p::describe::Returns::Result { ok: #ok, err: #err, errors: #errors })
        }
        (Output::Value(_), Some(target)) => quote! {
            __p::describe::Returns::Shared {
                name: <#target as __p::Shared>::NAME,
                err: ::core::option::Option::None,
                methods: __p::describe::methods_of::<#target>,
            }
        },
        (Output::Fallible { err, .. }, Some(target)) => {
            let err = err.as_deref().map(super::type_text).unwrap_or_default();
            quote! {
                __p::describe::Returns::Shared {
                    name: <#target as __p::Shared>::NAME,
                    err: ::core::option::Option::Some((#err, #errors)),
                    methods: __p::describe::methods_of::<#target>,
                }
            }
        }
    };
    quote! {
        __p::MethodInfo {
            name: #name,
            receiver: #receiver,
            is_async: #is_async,
            doc: #doc,
            params: &[#(#params),*],
            returns: #returns,
        }
    }
}

/// One match arm: decode the argument tuple, call, encode.
fn call_arm(index: usize, m: &Method) -> TokenStream {
    let encode = encode_call(m, quote!(self));
    let outcome = if m.is_async {
        quote!(__p::CallOutcome::Pending(__p::Box::pin(async move { #encode })))
    } else {
        quote!(__p::CallOutcome::Ready(#encode))
    };
    decode_then(index, m, outcome)
}

/// One match arm of `call_waiting`: decode the argument tuple now, then wait for the
/// object's lock, call and encode.
fn waiting_arm(index: usize, m: &Method) -> TokenStream {
    let name = wire_name(m);
    let (borrow, this) = match m.receiver {
        ReceiverKind::Mut => (
            quote! {
                let ::core::option::Option::Some(mut __guard) = __object.exclusive().await else {
                    return ::core::result::Result::Err(
                        __p::wrong_receiver(<Self as __p::Shared>::NAME, #name),
                    );
                };
            },
            quote!(&mut **__guard),
        ),
        _ => (
            quote!(let __guard = __object.shared().await;),
            quote!(&**__guard),
        ),
    };
    let encode = encode_call(m, this);
    let outcome = quote! {
        __p::CallOutcome::Pending(__p::Box::pin(async move {
            #borrow
            #encode
        }))
    };
    decode_then(index, m, outcome)
}

/// The arm `index =>` that decodes the argument tuple into the parameters' names, then
/// evaluates `outcome`.
fn decode_then(index: usize, m: &Method, outcome: TokenStream) -> TokenStream {
    let name = wire_name(m);
    let names: Vec<_> = m.params.iter().map(|p| &p.name).collect();
    let types: Vec<_> = m.params.iter().map(|p| p.ty.to_token_stream()).collect();
    quote! {
        #index => {
            let (#(#names,)*): (#(#types,)*) = match __p::decode_args(
                __codec, <Self as __p::Shared>::NAME, #name, __args,
            ) {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(e) => {
                    return __p::CallOutcome::Ready(::core::result::Result::Err(e));
                }
            };
            #outcome
        }
    }
}

/// Call the method on `this` with the decoded parameters and encode its result (awaited
/// for an `async fn`).
fn encode_call(m: &Method, this: TokenStream) -> TokenStream {
    let name = wire_name(m);
    let ident = &m.ident;
    let names: Vec<_> = m.params.iter().map(|p| &p.name).collect();
    let mut call = quote!(Self::#ident(#this, #(#names),*));
    if m.is_async {
        call = quote!(#call.await);
    }
    let typed = match (&m.output, m.errors) {
        (Output::Fallible { err: Some(err), .. }, ErrorMode::Typed) => Some(&**err),
        _ => None,
    };
    if let Some(err) = typed {
        // The error's text, when it has `Display` (autoref picks the impl).
        let message = quote! {
            |__e| {
                #[allow(unused_imports)]
                use __p::{DisplayFallback as _, DisplayViaTrait as _};
                #[allow(clippy::needless_borrow)]
                (&__p::Unsupported(__e)).shared_display()
            }
        };
        // An error type that cannot travel is reported at the type, a missing `From` at the
        // `method_to_typeid` target.
        let encode = quote_spanned!(err.span()=> __p::encode_typed_result);
        let encode = match (&m.output, &m.returns_shared) {
            (Output::Fallible { ok, .. }, Some(target)) => {
                let share =
                    quote_spanned!(target.span()=> __p::generated::share_value::<#target, #ok>);
                quote! {
                    match #call {
                        ::core::result::Result::Ok(__value) => #share(__value),
                        ::core::result::Result::Err(__e) => #encode::<(), #err>(
                            __codec, #name, ::core::result::Result::Err(__e), #message,
                        ),
                    }
                }
            }
            _ => quote!(#encode(__codec, #name, #call, #message)),
        };
        return encode;
    }
    match (&m.output, &m.returns_shared) {
        (Output::Unit, _) => quote! {{ #call; __p::encode_value(__codec, #name, &()) }},
        (Output::Value(_), None) => quote!(__p::encode_value(__codec, #name, &#call)),
        (Output::Fallible { .. }, None) => quote!(__p::encode_result(__codec, #name, #call)),
        // The return type is named so that a missing `From` impl is reported as
        // "`Target: From<Return>` is not satisfied", at the target.
        (Output::Value(ret), Some(target)) => {
            let share =
                quote_spanned!(target.span()=> __p::generated::share_value::<#target, #ret>);
            quote!(#share(#call))
        }
        (Output::Fallible { ok, .. }, Some(target)) => {
            let share =
                quote_spanned!(target.span()=> __p::generated::share_result::<#target, #ok, _>);
            quote!(#share(#name, #call))
        }
    }
}
