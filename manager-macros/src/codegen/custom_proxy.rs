//! `#[derive(Proxy)]`: the glue of a hand-written proxy (Python's `proxytype`) wrapping a
//! handle or a generated proxy.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::ProxyStruct;

pub(crate) fn custom_proxy(model: &ProxyStruct) -> TokenStream {
    let ident = &model.ident;
    let (Some(target), Some(inner)) = (&model.args.target, model.inner()) else {
        unreachable!("validated: a target and one inner field")
    };
    let inner_member = &inner.member;
    let inner_ty = &inner.ty;
    // A proxy is a `'static` value: its type parameters are too.
    let mut bounded = model.generics.clone();
    for param in bounded.type_params_mut() {
        param.bounds.push(syn::parse_quote!('static));
    }
    let (impl_generics, ty_generics, where_clause) = bounded.split_for_impl();
    let mut de_generics = bounded.clone();
    de_generics.params.insert(0, syn::parse_quote!('__de));
    let (de_impl_generics, _, _) = de_generics.split_for_impl();
    let (plain_impl, plain_ty, plain_where) = model.generics.split_for_impl();

    // The handle: the inner field itself, or the inner proxy's.
    let (wrap, handle) = if inner.is_handle {
        (quote!(handle), quote!(&self.#inner_member))
    } else {
        // An inner proxy of another shared type is reported at its field.
        let make = quote_spanned!(inner.ty.span()=>
            ::managers::__private::generated::inner_proxy::<#inner_ty, #target>
        );
        let wrap = quote!(#make(handle));
        (
            wrap,
            quote!(::managers::__private::Proxy::handle(&self.#inner_member)),
        )
    };
    let values = model.fields.iter().map(|f| {
        let member = &f.member;
        let value = if std::ptr::eq(f, inner) {
            wrap.clone()
        } else {
            // A field that is not `Default` is reported at its type.
            quote_spanned!(f.ty.span()=> ::core::default::Default::default())
        };
        quote!(#member: #value)
    });

    let clone = model.args.clone.as_ref().map(|_| {
        let fields = model.fields.iter().map(|f| {
            let member = &f.member;
            quote!(#member: ::core::clone::Clone::clone(&self.#member))
        });
        quote! {
            #[automatically_derived]
            impl #plain_impl ::core::clone::Clone for #ident #plain_ty #plain_where {
                fn clone(&self) -> Self {
                    Self { #(#fields),* }
                }
            }
        }
    });
    let debug = model.args.debug.as_ref().map(|_| {
        quote! {
            /// The wrapped proxy's: the referent's typeid, address and id.
            #[automatically_derived]
            impl #plain_impl ::core::fmt::Debug for #ident #plain_ty #plain_where {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Debug::fmt(&self.#inner_member, f)
                }
            }
        }
    });
    let deref = model.args.deref.as_ref().map(|_| {
        quote! {
            /// The wrapped proxy: its methods are this proxy's too.
            #[automatically_derived]
            impl #plain_impl ::core::ops::Deref for #ident #plain_ty #plain_where {
                type Target = #inner_ty;

                fn deref(&self) -> &#inner_ty {
                    &self.#inner_member
                }
            }
        }
    });
    // `Self { 0: .., 1: .. }` builds tuple structs too.
    quote! {
        #[automatically_derived]
        impl #impl_generics ::managers::__private::Proxy for #ident #ty_generics #where_clause {
            type Target = #target;

            fn from_handle(handle: ::managers::__private::ProxyHandle) -> Self {
                Self { #(#values),* }
            }

            fn handle(&self) -> &::managers::__private::ProxyHandle {
                #handle
            }
        }

        /// Serialising puts a new reference in transit for the receiver.
        #[automatically_derived]
        impl #impl_generics ::managers::__private::serde::Serialize for #ident #ty_generics #where_clause {
            fn serialize<S: ::managers::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::managers::__private::serde::Serialize::serialize(
                    <Self as ::managers::__private::Proxy>::handle(self),
                    serializer,
                )
            }
        }

        /// Deserialising adopts the reference the sender put in transit.
        #[automatically_derived]
        impl #de_impl_generics ::managers::__private::serde::Deserialize<'__de> for #ident #ty_generics #where_clause {
            fn deserialize<D: ::managers::__private::serde::Deserializer<'__de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                <::managers::__private::ProxyHandle as ::managers::__private::serde::Deserialize>
                    ::deserialize(deserializer)
                    .map(::managers::__private::ProxyHandle::into_adopted::<Self>)
            }
        }

        #clone
        #debug
        #deref
    }
}
