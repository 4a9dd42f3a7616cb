//! memdex's proc macros. Each is a thin shim over an `*_inner(proc_macro2::TokenStream)`
//! function that unit tests call directly; the language logic lives in
//! `memdex-grammar`. OWNER: helper "macros".

use proc_macro::TokenStream;

#[proc_macro_derive(Model, attributes(memdex))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}

#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}

#[proc_macro]
pub fn scan(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}

#[proc_macro]
pub fn view(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}
