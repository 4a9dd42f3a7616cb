//! `select!`, `scan!` and `view!`: parse `Model, |c| …`, lower the closure to IR,
//! check indexability at compile time (select and filtered views), and emit a call
//! site that plans once (a `static OnceLock<Compiled>`), binds the captured values
//! as parameters, and keeps the user's closure (with the user's spans) as the
//! in-memory predicate, so rustc checks field names and types where they were written.

use memdex_grammar::ir::{Expr, ExprKind, Lambda};
use memdex_grammar::plan::CandidateKind;
use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;

use crate::emit;
use crate::lower::{BodyKind, Closure, Lowering, ParamKind};

/// `[@ir] Model, |c| …[, |c| …]`
struct QueryInput {
    /// `@ir`: expand to the lowered IR and parameters instead of a query (tests).
    probe: bool,
    model: syn::Path,
    closures: Vec<syn::Expr>,
}

impl Parse for QueryInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<QueryInput> {
        let probe = if input.peek(syn::Token![@]) {
            input.parse::<syn::Token![@]>()?;
            let kw: syn::Ident = input.parse()?;
            if kw != "ir" {
                return Err(syn::Error::new(kw.span(), "unknown option"));
            }
            true
        } else {
            false
        };
        if input.is_empty() {
            return Err(input.error("expected the model and a closure: `select!(Item, |c| c.category_id == 5)`"));
        }
        let model: syn::Path = input.parse()?;
        if input.is_empty() {
            return Err(syn::Error::new_spanned(
                &model,
                "expected a closure after the model: `select!(Item, |c| c.category_id == 5)`",
            ));
        }
        input.parse::<syn::Token![,]>()?;
        let closures = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated(input)?;
        Ok(QueryInput { probe, model, closures: closures.into_iter().collect() })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Select,
    Scan,
}

pub fn select_inner(input: TokenStream) -> syn::Result<TokenStream> {
    filter_query(input, Kind::Select)
}

pub fn scan_inner(input: TokenStream) -> syn::Result<TokenStream> {
    filter_query(input, Kind::Scan)
}

fn model_name(model: &syn::Path) -> String {
    model.segments.last().map_or_else(String::new, |s| s.ident.to_string())
}

fn filter_query(input: TokenStream, kind: Kind) -> syn::Result<TokenStream> {
    let input: QueryInput = syn::parse2(input)?;
    let model = &input.model;
    let name = if kind == Kind::Select { "select" } else { "scan" };
    let mut lowering = Lowering::new();
    let closure = match input.closures.as_slice() {
        [one] => lowering.closure(one, "|c| c.field == value"),
        [] => {
            return Err(syn::Error::new_spanned(model, format!("{name}! needs a closure: `{name}!(Model, |c| …)`")));
        }
        [_, extra, ..] => {
            return Err(syn::Error::new_spanned(
                extra,
                format!("{name}! takes one closure; to combine conditions use `&&` and `||` inside it"),
            ));
        }
    };
    let lambda = closure.as_ref().and_then(|c| lowering.lambda(c, BodyKind::Filter));
    let checks = match (&lambda, kind) {
        (Some(l), Kind::Select) => index_checks(model, l, &lowering),
        _ => TokenStream::new(),
    };
    let errors = lowering.take_errors().map(|e| e.to_compile_error());

    let compiled = emit::hidden("__MEMDEX_COMPILED");
    let runtime_fn = if kind == Kind::Select { quote!(select) } else { quote!(scan) };
    let access = if kind == Kind::Select { quote!(Indexed) } else { quote!(Scan) };
    let (Some(closure), Some(lambda), None) = (closure, lambda, &errors) else {
        // One mistake, its errors only: an expression of the right type that
        // mentions nothing else of the user's, so rustc adds no errors of its own.
        let errors = errors.unwrap_or_default();
        return Ok(quote! {{
            #errors
            static #compiled: ::std::sync::OnceLock<::memdex::__private::Compiled> = ::std::sync::OnceLock::new();
            ::memdex::__private::#runtime_fn::<#model>(
                #compiled.get_or_init(::memdex::__private::not_compiled::<#model>),
                ::std::vec::Vec::new(),
                |_: &#model| false,
            )
        }});
    };
    let lambda_code = emit::lambda(&lambda);
    let params = params(&lowering);
    let predicate = predicate(model, &closure);
    let field_checks = field_checks(model, &closure);
    let checks = quote!(#checks #field_checks);

    if input.probe {
        return Ok(quote! {{
            #checks
            let _ = #predicate;
            ::memdex::__private::LoweredQuery {
                filter: ::std::option::Option::Some(#lambda_code),
                aggregate: ::std::option::Option::None,
                params: ::std::vec![#(#params),*],
            }
        }});
    }
    Ok(quote! {{
        #checks
        static #compiled: ::std::sync::OnceLock<::memdex::__private::Compiled> = ::std::sync::OnceLock::new();
        ::memdex::__private::#runtime_fn::<#model>(
            #compiled.get_or_init(|| ::memdex::__private::compile::<#model>(
                #lambda_code,
                ::memdex::__private::grammar::Access::#access,
            )),
            ::std::vec![#(#params),*],
            #predicate,
        )
    }})
}

pub fn view_inner(input: TokenStream) -> syn::Result<TokenStream> {
    let input: QueryInput = syn::parse2(input)?;
    let model = &input.model;
    let mut lowering = Lowering::new();
    let (filter_expr, agg_expr) = match input.closures.as_slice() {
        [agg] => (None, agg),
        [filter, agg] => (Some(filter), agg),
        [] => {
            return Err(syn::Error::new_spanned(
                model,
                "view! needs an aggregate closure: `view!(Model, |m| avg(m.field))` or \
                 `view!(Model, |m| filter, |m| avg(m.field))`",
            ));
        }
        [_, _, extra, ..] => {
            return Err(syn::Error::new_spanned(extra, "view! takes at most two closures: a filter and an aggregate"));
        }
    };
    let filter_closure = filter_expr.map(|f| lowering.closure(f, "|m| m.field == value"));
    let agg_closure = lowering.closure(agg_expr, "|m| avg(m.field)");
    let filter_lambda = match &filter_closure {
        Some(Some(c)) => lowering.lambda(c, BodyKind::Filter),
        _ => None,
    };
    let agg_lambda = agg_closure.as_ref().and_then(|c| lowering.lambda(c, BodyKind::Aggregate));
    let checks = filter_lambda.as_ref().map(|l| index_checks(model, l, &lowering)).unwrap_or_default();
    let errors = lowering.take_errors().map(|e| e.to_compile_error());

    // count() gives u64; the others Option<f64> (None over no rows).
    let agg_func = agg_lambda.as_ref().and_then(|l| match &l.body.kind {
        ExprKind::Agg { func, .. } => Some(*func),
        _ => None,
    });
    let output = match agg_func {
        Some(memdex_grammar::ir::AggFunc::Count) => quote!(u64),
        _ => quote!(::std::option::Option<f64>),
    };
    let compiled = emit::hidden("__MEMDEX_COMPILED");

    let (Some(agg_closure), Some(agg_lambda), None) = (agg_closure, agg_lambda, &errors) else {
        let errors = errors.unwrap_or_default();
        return Ok(quote! {{
            #errors
            static #compiled: ::std::sync::OnceLock<::memdex::__private::Compiled> = ::std::sync::OnceLock::new();
            ::memdex::__private::view::<#model, #output>(
                #compiled.get_or_init(::memdex::__private::not_compiled::<#model>),
                ::std::vec::Vec::new(),
                ::std::option::Option::None,
            )
        }});
    };
    let filter = match (filter_closure, filter_lambda) {
        (Some(Some(c)), Some(l)) => Some((c, l)),
        _ => None,
    };
    let field_checks = filter.as_ref().map(|(c, _)| field_checks(model, c));
    let checks = quote!(#checks #field_checks);

    // rustc checks the aggregate's argument in a closure that never runs: the field
    // exists and is numeric.
    let arg_check = match &agg_lambda.body.kind {
        ExprKind::Agg { arg: Some(_), .. } => {
            let arg = agg_argument(&agg_closure.body);
            let pat = &agg_closure.pat;
            let ty = param_type(model, &agg_closure);
            quote! {
                let _ = |#pat: #ty| ::memdex::__private::aggregate_arg(&(#arg));
            }
        }
        _ => TokenStream::new(),
    };
    let params = params(&lowering);
    let agg_code = emit::lambda(&agg_lambda);
    let (filter_code, predicate) = match &filter {
        Some((c, l)) => {
            let code = emit::lambda(l);
            let pred = predicate(model, c);
            (
                quote!(::std::option::Option::Some(#code)),
                quote!(::std::option::Option::Some(::std::boxed::Box::new(#pred))),
            )
        }
        None => (quote!(::std::option::Option::None), quote!(::std::option::Option::None)),
    };

    if input.probe {
        return Ok(quote! {{
            #checks
            #arg_check
            let _: ::std::option::Option<::std::boxed::Box<dyn ::std::ops::Fn(&#model) -> bool>> = #predicate;
            ::memdex::__private::LoweredQuery {
                filter: #filter_code,
                aggregate: ::std::option::Option::Some(#agg_code),
                params: ::std::vec![#(#params),*],
            }
        }});
    }
    Ok(quote! {{
        #checks
        #arg_check
        static #compiled: ::std::sync::OnceLock<::memdex::__private::Compiled> = ::std::sync::OnceLock::new();
        ::memdex::__private::view::<#model, #output>(
            #compiled.get_or_init(|| ::memdex::__private::compile_view::<#model>(#filter_code, #agg_code)),
            ::std::vec![#(#params),*],
            #predicate,
        )
    }})
}

/// The argument of `avg(m.field)` as the user wrote it.
fn agg_argument(body: &syn::Expr) -> TokenStream {
    let mut e = body;
    while let syn::Expr::Paren(p) = e {
        e = &p.expr;
    }
    match e {
        syn::Expr::Call(c) if c.args.len() == 1 => c.args[0].to_token_stream(),
        other => other.to_token_stream(),
    }
}

fn param_type(model: &syn::Path, c: &Closure) -> TokenStream {
    match &c.ty {
        Some(t) => t.to_token_stream(),
        None => quote!(&#model),
    }
}

/// rustc checks, in a closure that never runs, that each field the filter reads
/// can be compared in a query (a JSON field cannot), with the error at the field.
fn field_checks(model: &syn::Path, c: &Closure) -> TokenStream {
    struct Fields<'a> {
        param: &'a syn::Ident,
        found: Vec<&'a syn::ExprField>,
    }
    impl<'a> syn::visit::Visit<'a> for Fields<'a> {
        fn visit_expr_field(&mut self, f: &'a syn::ExprField) {
            match &*f.base {
                syn::Expr::Path(p) if p.path.is_ident(self.param) => self.found.push(f),
                _ => syn::visit::visit_expr_field(self, f),
            }
        }
    }
    let Some(param) = &c.param else { return TokenStream::new() };
    let mut fields = Fields { param, found: Vec::new() };
    syn::visit::Visit::visit_expr(&mut fields, &c.body);
    if fields.found.is_empty() {
        return TokenStream::new();
    }
    let uses = fields.found.iter().map(|f| {
        let span = crate::lower::first_span(&f.member);
        quote_spanned!(span=> ::memdex::__private::queryable(&#f);)
    });
    let (pat, ty) = (&c.pat, param_type(model, c));
    quote! {
        let _ = |#pat: #ty| { #(#uses)* };
    }
}

/// The in-memory predicate: the user's body in a closure over `&Model`.
fn predicate(model: &syn::Path, c: &Closure) -> TokenStream {
    let (mv, pat, body) = (&c.movability, &c.pat, &c.body);
    let ty = param_type(model, c);
    quote!(#mv |#pat: #ty| -> bool { #body })
}

/// The parameter values, in order, each evaluated once per `fetch`-building call.
fn params(lowering: &Lowering) -> Vec<TokenStream> {
    lowering
        .params
        .iter()
        .map(|p| {
            let e = &p.expr;
            let span = crate::lower::first_span(e);
            match p.kind {
                ParamKind::Scalar => quote_spanned!(span=> ::memdex::__private::to_value(&(#e))),
                ParamKind::List => quote_spanned!(span=> ::memdex::__private::to_list_value(&(#e))),
            }
        })
        .collect()
}

/// Per disjunct of the filter's DNF, a `const` assertion that some index of the
/// model serves it, spanned at that disjunct: an unindexable query fails to compile
/// with `evaluation panicked: memdex: no index of Item serves …` at the disjunct.
fn index_checks(model: &syn::Path, lambda: &Lambda, lowering: &Lowering) -> TokenStream {
    let model_name = model_name(model);
    let dnf = match normalise(&lambda.body) {
        Ok(Some(dnf)) => dnf,
        Ok(None) => return TokenStream::new(),
        Err(e) => {
            let (first, last) = lowering.tokens_of(e.span).unwrap_or((Span::call_site(), Span::call_site()));
            let mut message = e.kind.to_string();
            if let Some(h) = &e.hint {
                message.push_str(&format!(" ({h})"));
            }
            return spanned_error(first, last, &message);
        }
    };
    let mut out = TokenStream::new();
    // The planner drops a disjunct that can never hold (`c.x == 1 && c.x == 2`)
    // instead of looking for its index, so such a disjunct needs no index here either.
    for conjunction in dnf.iter().filter(|c| !memdex_grammar::plan::contradictory(c)) {
        let candidates = memdex_grammar::plan::candidates(conjunction);
        let (first, last) = disjunct_tokens(conjunction, lambda, lowering);
        let text = disjunct_text(conjunction, lambda, lowering);
        let mut eq: Vec<&str> = Vec::new();
        let mut prefix: Vec<(&str, Option<u32>)> = Vec::new();
        for c in &candidates {
            match c.kind {
                CandidateKind::Eq | CandidateKind::In => {
                    if !eq.contains(&c.field.as_str()) {
                        eq.push(&c.field);
                    }
                }
                CandidateKind::Prefix { literal_chars } => prefix.push((&c.field, literal_chars)),
            }
        }
        let suggestion = suggestion(&model_name, &eq, &prefix, conjunction);
        let (before, after) = memdex_grammar::plan::unindexable_message(&model_name, &text, &suggestion);
        let prefix_items = prefix.iter().map(|(f, n)| match n {
            Some(n) => quote!((#f, #n)),
            None => quote!((#f, ::memdex::__private::RUNTIME_PREFIX)),
        });
        let args = quote! {
            <#model as ::memdex::Model>::INDEXES,
            <#model as ::memdex::Model>::FIELDS,
            &[#(#eq),*],
            &[#(#prefix_items),*],
            #before,
            <#model as ::memdex::Model>::INDEX_LIST,
            #after
        };
        // The call's path carries the disjunct's first token's span and its argument
        // list the last token's, so rustc points at the whole disjunct.
        let mut group = Group::new(Delimiter::Parenthesis, args);
        group.set_span(last);
        out.extend(quote_spanned! {first=>
            const _: () = ::memdex::__private::assert_indexable #group;
        });
    }
    out
}

/// `to_dnf` from `memdex-grammar` (`None`: nothing to check).
fn normalise(body: &Expr) -> Result<Option<Vec<Vec<Expr>>>, memdex_grammar::Error> {
    memdex_grammar::normalise::to_dnf(body, memdex_grammar::normalise::DEFAULT_DISJUNCT_LIMIT).map(Some)
}

/// The disjunct's first and last tokens: of its leaves, the one numbered first
/// starts first and the one numbered last ends last (numbers are pre-order).
fn disjunct_tokens(conjunction: &[Expr], lambda: &Lambda, lowering: &Lowering) -> (Span, Span) {
    let whole = lowering.tokens_of(lambda.body.span).unwrap_or((Span::call_site(), Span::call_site()));
    let numbered = |e: &&Expr| (e.span.end > e.span.start) && lowering.tokens_of(e.span).is_some();
    let first = conjunction.iter().filter(numbered).min_by_key(|e| e.span.start);
    let last = conjunction.iter().filter(numbered).max_by_key(|e| e.span.end);
    match (first, last) {
        (Some(f), Some(l)) => {
            let f = lowering.tokens_of(f.span).map_or(whole.0, |t| t.0);
            let l = lowering.tokens_of(l.span).map_or(whole.1, |t| t.1);
            (f, l)
        }
        _ => whole,
    }
}

/// The disjunct as the user wrote its parts: `c.price > 10.0 && c.deleted_at.is_none()`.
fn disjunct_text(conjunction: &[Expr], lambda: &Lambda, lowering: &Lowering) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for leaf in conjunction {
        let text = lowering.text_of(leaf.span).unwrap_or("…");
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return lowering.text_of(lambda.body.span).unwrap_or("true").to_string();
    }
    parts.join(" && ")
}

/// What to do about an unindexable disjunct, worded like the planner's suggestion
/// for the text form (which can also look at the schema; the macro cannot).
fn suggestion(model: &str, eq: &[&str], prefix: &[(&str, Option<u32>)], conjunction: &[Expr]) -> String {
    match eq {
        [one] => return format!("add #[memdex(index)] on `{one}`"),
        [_, _, ..] => return format!("add #[memdex(index({}))] on {model}", eq.join(", ")),
        [] => {}
    }
    if let Some((field, n)) = prefix.iter().find(|(_, n)| n.is_none_or(|n| n > 0)) {
        return match n {
            Some(n) => format!(
                "make the `starts_with` pattern on `{field}` at least as long as its prefix index, or add \
                 #[memdex(index(prefix = {n}))] on `{field}`"
            ),
            None => format!("add #[memdex(index(prefix = 1))] on `{field}`"),
        };
    }
    memdex_grammar::plan::no_criteria_suggestion(conjunction)
}

/// A `compile_error!` spanning `first..last`.
fn spanned_error(first: Span, last: Span, message: &str) -> TokenStream {
    let mut group = Group::new(Delimiter::Brace, quote!(#message));
    group.set_span(last);
    quote_spanned!(first=> ::core::compile_error! #group)
}
