//! Code generation: one function per generated item, composed here.
//!
//! Everything generated names runtime items only through `::managers::__private`, so the
//! user's imports and prelude do not matter.

mod dispatch;
mod proxy;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::SharedImpl;

pub(crate) fn expand(model: &SharedImpl) -> TokenStream {
    let item = &model.item;
    let dispatch = dispatch::shared_impl(model);
    let proxy = proxy::proxy(model);
    quote! {
        #item
        #proxy
        const _: () = {
            #dispatch
        };
    }
}
