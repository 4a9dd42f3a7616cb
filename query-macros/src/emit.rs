//! IR → the Rust code that rebuilds it at run time (once per call site), so the
//! runtime never parses query text for a macro query.

use memdex_grammar::Value;
use memdex_grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;

pub fn lambda(l: &Lambda) -> TokenStream {
    let ir = ir();
    let param = &l.param;
    let param_span = span(l.param_span);
    let whole = span(l.span);
    let body = expr(&l.body);
    quote! {
        #ir::Lambda {
            param: ::std::string::String::from(#param),
            param_span: #param_span,
            body: #body,
            span: #whole,
        }
    }
}

fn ir() -> TokenStream {
    quote!(::memdex::__private::grammar::ir)
}

fn span(s: memdex_grammar::Span) -> TokenStream {
    // Macro spans are always one node wide (`start`, `start + 1`).
    let id = s.start;
    quote!(::memdex::__private::span(#id))
}

fn boxed(e: &Expr) -> TokenStream {
    let inner = expr(e);
    quote!(::std::boxed::Box::new(#inner))
}

pub fn expr(e: &Expr) -> TokenStream {
    let ir = ir();
    let sp = span(e.span);
    let kind = match &e.kind {
        ExprKind::Field(name) => quote!(#ir::ExprKind::Field(::std::string::String::from(#name))),
        ExprKind::Lit(v) => {
            let v = value(v);
            quote!(#ir::ExprKind::Lit(#v))
        }
        ExprKind::Param(name) => quote!(#ir::ExprKind::Param(::std::string::String::from(#name))),
        ExprKind::Not(x) => {
            let x = boxed(x);
            quote!(#ir::ExprKind::Not(#x))
        }
        ExprKind::Neg(x) => {
            let x = boxed(x);
            quote!(#ir::ExprKind::Neg(#x))
        }
        ExprKind::And(items) | ExprKind::Or(items) => {
            let items = items.iter().map(expr);
            let variant = if matches!(e.kind, ExprKind::And(_)) { quote!(And) } else { quote!(Or) };
            quote!(#ir::ExprKind::#variant(::std::vec![#(#items),*]))
        }
        ExprKind::Cmp { op, lhs, rhs } => {
            let op = cmp_op(*op);
            let (l, r) = (boxed(lhs), boxed(rhs));
            quote!(#ir::ExprKind::Cmp { op: #ir::CmpOp::#op, lhs: #l, rhs: #r })
        }
        ExprKind::Arith { op, lhs, rhs } => {
            let op = arith_op(*op);
            let (l, r) = (boxed(lhs), boxed(rhs));
            quote!(#ir::ExprKind::Arith { op: #ir::ArithOp::#op, lhs: #l, rhs: #r })
        }
        ExprKind::StrTest { op, subject, pattern } => {
            let op = match op {
                StrOp::StartsWith => quote!(StartsWith),
                StrOp::EndsWith => quote!(EndsWith),
                StrOp::Contains => quote!(Contains),
            };
            let (s, p) = (boxed(subject), boxed(pattern));
            quote!(#ir::ExprKind::StrTest { op: #ir::StrOp::#op, subject: #s, pattern: #p })
        }
        ExprKind::Lower(x) => {
            let x = boxed(x);
            quote!(#ir::ExprKind::Lower(#x))
        }
        ExprKind::IEq(a, b) => {
            let (a, b) = (boxed(a), boxed(b));
            quote!(#ir::ExprKind::IEq(#a, #b))
        }
        ExprKind::Len(x) => {
            let x = boxed(x);
            quote!(#ir::ExprKind::Len(#x))
        }
        ExprKind::In { needle, haystack } => {
            let n = boxed(needle);
            let h = match haystack {
                Haystack::Items(items) => {
                    let items = items.iter().map(expr);
                    quote!(#ir::Haystack::Items(::std::vec![#(#items),*]))
                }
                Haystack::Param(p) => quote!(#ir::Haystack::Param(::std::string::String::from(#p))),
            };
            quote!(#ir::ExprKind::In { needle: #n, haystack: #h })
        }
        ExprKind::IsNull { expr: x, negated } => {
            let x = boxed(x);
            quote!(#ir::ExprKind::IsNull { expr: #x, negated: #negated })
        }
        ExprKind::Agg { func, arg } => {
            let func = match func {
                AggFunc::Count => quote!(Count),
                AggFunc::Sum => quote!(Sum),
                AggFunc::Min => quote!(Min),
                AggFunc::Max => quote!(Max),
                AggFunc::Avg => quote!(Avg),
            };
            let arg = match arg {
                Some(a) => {
                    let a = boxed(a);
                    quote!(::std::option::Option::Some(#a))
                }
                None => quote!(::std::option::Option::None),
            };
            quote!(#ir::ExprKind::Agg { func: #ir::AggFunc::#func, arg: #arg })
        }
    };
    quote!(#ir::Expr { kind: #kind, span: #sp })
}

fn value(v: &Value) -> TokenStream {
    match v {
        Value::Null => quote!(::memdex::Value::Null),
        Value::Bool(b) => quote!(::memdex::Value::Bool(#b)),
        Value::Int(i) => {
            let lit = Literal::i64_suffixed(*i);
            quote!(::memdex::Value::Int(#lit))
        }
        Value::Float(x) if x.is_finite() => {
            let lit = Literal::f64_suffixed(*x);
            quote!(::memdex::Value::Float(#lit))
        }
        Value::Float(x) if x.is_nan() => quote!(::memdex::Value::Float(::core::f64::NAN)),
        Value::Float(x) if *x > 0.0 => quote!(::memdex::Value::Float(::core::f64::INFINITY)),
        Value::Float(_) => quote!(::memdex::Value::Float(::core::f64::NEG_INFINITY)),
        Value::Text(s) => {
            let lit = Literal::string(s);
            quote!(::memdex::Value::Text(::std::string::String::from(#lit)))
        }
        Value::List(items) => {
            let items = items.iter().map(value);
            quote!(::memdex::Value::List(::std::vec![#(#items),*]))
        }
        // Closures have no literals of these types (they are captured values), but
        // every value has its spelling, so the IR always round-trips.
        Value::Bytes(b) => quote!(::memdex::Value::Bytes(::std::vec![#(#b),*])),
        Value::Timestamp(us) => {
            let lit = Literal::i64_suffixed(*us);
            quote!(::memdex::Value::Timestamp(#lit))
        }
        Value::Uuid(u) => quote!(::memdex::Value::Uuid([#(#u),*])),
        Value::Json(j) => {
            let lit = Literal::string(j);
            quote!(::memdex::Value::Json(::std::string::String::from(#lit)))
        }
    }
}

fn cmp_op(op: CmpOp) -> TokenStream {
    match op {
        CmpOp::Eq => quote!(Eq),
        CmpOp::Ne => quote!(Ne),
        CmpOp::Lt => quote!(Lt),
        CmpOp::Le => quote!(Le),
        CmpOp::Gt => quote!(Gt),
        CmpOp::Ge => quote!(Ge),
    }
}

fn arith_op(op: ArithOp) -> TokenStream {
    match op {
        ArithOp::Add => quote!(Add),
        ArithOp::Sub => quote!(Sub),
        ArithOp::Mul => quote!(Mul),
        ArithOp::Div => quote!(Div),
        ArithOp::Rem => quote!(Rem),
    }
}

/// A hygienic name for the macro's own items (invisible to the user's code).
pub fn hidden(name: &str) -> proc_macro2::Ident {
    proc_macro2::Ident::new(name, Span::mixed_site())
}
