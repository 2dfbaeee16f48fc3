//! Code generation: one function per generated item, composed here.
//!
//! Everything generated names runtime items only through `::managers::__private`, so the
//! user's imports and prelude do not matter.

mod custom_proxy;
mod dispatch;
mod proxy;

pub(crate) use custom_proxy::custom_proxy;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::SharedImpl;

pub(crate) fn expand(model: &SharedImpl) -> TokenStream {
    let item = &model.item;
    let dispatch = dispatch::shared_impl(model);
    let proxy = proxy::proxy(model);
    let checks = dispatch::return_checks(model);
    quote! {
        #item
        #checks
        #proxy
        const _: () = {
            #dispatch
        };
    }
}

/// What an impl block that failed validation still provides: `impl Shared` with no
/// methods (see `expand` in lib.rs).
pub(crate) fn fallback(model: &SharedImpl) -> TokenStream {
    let self_ty = &model.item.self_ty;
    let shared_name = &model.name;
    quote! {
        const _: () = {
            use ::managers::__private as __p;
            impl __p::Shared for #self_ty {
                const NAME: &'static str = #shared_name;
                const METHODS: &'static [__p::MethodInfo] = &[];
                const HIDDEN: &'static [&'static str] = &[];
                fn call_ref<'__a>(
                    &'__a self,
                    __method: usize,
                    _: &'__a [u8],
                    _: __p::Codec,
                ) -> __p::CallOutcome<'__a> {
                    __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::unknown_method_index(#shared_name, __method),
                    ))
                }
                fn call_mut<'__a>(
                    &'__a mut self,
                    __method: usize,
                    _: &'__a [u8],
                    _: __p::Codec,
                ) -> __p::CallOutcome<'__a> {
                    __p::CallOutcome::Ready(::core::result::Result::Err(
                        __p::unknown_method_index(#shared_name, __method),
                    ))
                }
                fn display(&self) -> ::core::option::Option<::std::string::String> {
                    ::core::option::Option::None
                }
            }
        };
    }
}

/// A type as a reader writes it: `Vec<u8>`, not `Vec < u8 >`.
pub(crate) fn type_text(ty: &syn::Type) -> String {
    tidy(&quote!(#ty).to_string())
}

pub(crate) fn type_text_path(path: &syn::Path) -> String {
    tidy(&quote!(#path).to_string())
}

fn tidy(text: &str) -> String {
    text.replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace("& ", "&")
        .replace("' ", "'")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ;", ";")
        .replace("[ ", "[")
        .replace(" ]", "]")
}
