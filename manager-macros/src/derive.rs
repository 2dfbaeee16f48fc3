//! `#[derive(Proxy)]`: hand-written proxies.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Error, Fields, Type};

pub(crate) fn proxy(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let mut target: Option<syn::Path> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("proxy")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("target") {
                if target.is_some() {
                    return Err(meta.error("duplicate `target` argument"));
                }
                target = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown #[proxy] argument; expected `target = Type`"))
            }
        })?;
    }
    let target = target.ok_or_else(|| {
        Error::new_spanned(
            &input.ident,
            "name the shared type this proxy calls: #[proxy(target = Type)]",
        )
    })?;
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "a proxy type cannot be generic",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(Error::new_spanned(
            &input.ident,
            "#[derive(Proxy)] needs a struct",
        ));
    };
    let is_handle = |ty: &Type| matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "ProxyHandle"));
    let handles: Vec<_> = data
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| is_handle(&f.ty))
        .collect();
    let [(index, handle_field)] = handles[..] else {
        return Err(Error::new_spanned(
            &input.ident,
            "a proxy struct needs exactly one field of type `managers::ProxyHandle`",
        ));
    };
    let ident = &input.ident;
    let (construct, access) = match &data.fields {
        Fields::Named(fields) => {
            let name = handle_field.ident.as_ref().expect("named field");
            let others = fields
                .named
                .iter()
                .filter(|f| f.ident.as_ref() != Some(name))
                .map(|f| {
                    let n = &f.ident;
                    quote!(#n: ::core::default::Default::default())
                });
            (
                quote!(Self { #name: handle, #(#others,)* }),
                quote!(&self.#name),
            )
        }
        Fields::Unnamed(fields) => {
            let values = (0..fields.unnamed.len()).map(|i| {
                if i == index {
                    quote!(handle)
                } else {
                    quote!(::core::default::Default::default())
                }
            });
            let i = syn::Index::from(index);
            (quote!(Self(#(#values),*)), quote!(&self.#i))
        }
        Fields::Unit => unreachable!("a unit struct has no handle field"),
    };
    Ok(quote! {
        #[automatically_derived]
        impl ::managers::__private::Proxy for #ident {
            type Target = #target;

            fn from_handle(handle: ::managers::__private::ProxyHandle) -> Self {
                #construct
            }

            fn handle(&self) -> &::managers::__private::ProxyHandle {
                #access
            }
        }

        /// Serialising puts a new reference in transit for the receiver.
        #[automatically_derived]
        impl ::managers::__private::serde::Serialize for #ident {
            fn serialize<S: ::managers::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::managers::__private::serde::Serialize::serialize(#access, serializer)
            }
        }

        /// Deserialising adopts the reference the sender put in transit.
        #[automatically_derived]
        impl<'de> ::managers::__private::serde::Deserialize<'de> for #ident {
            fn deserialize<D: ::managers::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                <::managers::__private::ProxyHandle as ::managers::__private::serde::Deserialize>
                    ::deserialize(deserializer)
                    .map(|handle| <Self as ::managers::__private::Proxy>::from_handle(handle))
            }
        }
    })
}
