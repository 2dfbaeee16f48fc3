//! The `#[shared]` attribute of `managers`. Use it through the `managers` crate, which
//! documents it; this crate is its implementation.
//!
//! Pipeline, for both macros: `args` parses the attributes, `model` reads the `impl` block
//! (or the proxy struct) into plain structs, `validate` checks them, `codegen` writes the
//! dispatch table and the proxy (or the hand-written proxy's glue).

mod args;
mod codegen;
mod model;
mod validate;

use proc_macro::TokenStream;

/// Share the type of this inherent `impl` block through managers: generates the
/// server-side dispatch table and a typed client proxy. See the `managers` crate docs.
#[proc_macro_attribute]
pub fn shared(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into()).into()
}

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    // The fallback is the type's `Shared` impl with no methods, emitted next to the errors
    // once the impl block is understood, so that code naming the type as shared (a proxy
    // derive, a registration) does not add errors of its own.
    let mut fallback = proc_macro2::TokenStream::new();
    // The item as emitted next to errors: once read, without the methods' own
    // `#[shared(..)]` attributes (which would otherwise expand on their own).
    let mut emitted = item.clone();
    let attempt = || -> syn::Result<proc_macro2::TokenStream> {
        // Bad arguments are reported after the item is read, so that it is emitted clean.
        let (args, bad_args) = match args::parse(args) {
            Ok(args) => (args, None),
            Err(e) => (args::Args::default(), Some(e)),
        };
        let mut item: syn::ItemImpl = syn::parse2(item.clone()).map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[shared] goes on an inherent `impl Type { ... }` block",
            )
        })?;
        let method_attrs = model::take_method_attrs(&mut item);
        emitted = quote::ToTokens::to_token_stream(&item);
        let model = model::SharedImpl::from_syn(args, item, method_attrs)?;
        if model.item.generics.params.is_empty() {
            fallback = codegen::fallback(&model);
        }
        if let Some(e) = bad_args {
            return Err(e);
        }
        validate::check(&model)?;
        Ok(codegen::expand(&model))
    };
    match attempt() {
        Ok(tokens) => tokens,
        // Emit the user's item unchanged next to the errors, so their other code does not
        // drown in follow-on errors.
        Err(e) => {
            let errors = e.to_compile_error();
            quote::quote!(#emitted #errors #fallback)
        }
    }
}

/// Implement `managers::Proxy` (and serde) for a hand-written proxy type (Python's
/// `proxytype`): `#[proxy(target = Type)]` on the struct, `#[proxy(inner)]` on the generated
/// proxy it wraps (or one `ProxyHandle` field), and optionally `deref`, `clone`, `debug`.
/// See "Hand-written proxies" in the `managers` crate docs.
#[proc_macro_derive(Proxy, attributes(proxy))]
pub fn derive_proxy(item: TokenStream) -> TokenStream {
    let attempt = || -> syn::Result<proc_macro2::TokenStream> {
        let input: syn::DeriveInput = syn::parse2(item.into())?;
        let model = model::ProxyStruct::from_syn(input)?;
        validate::check_proxy(&model)?;
        Ok(codegen::custom_proxy(&model))
    };
    attempt().unwrap_or_else(|e| e.to_compile_error()).into()
}
