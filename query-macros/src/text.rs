//! Rust tokens back to the text a person would have written (`c.price > 10.0`, not
//! `c . price > 10.0`), for error messages that quote the user's query.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Tokens as compact Rust source: no space around `.` and `::`, none inside
/// brackets, none between a name and its argument list, spaces around binary
/// operators, none after a unary operator.
pub fn tokens(ts: TokenStream) -> String {
    let mut out = String::new();
    write_tokens(ts, &mut out);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Prev {
    /// Start of a stream, or after an opening bracket: a following operator is unary.
    Open,
    /// After an operand (name, literal, closing bracket).
    Operand,
    /// After a binary operator (a following operator is unary).
    BinaryOp,
    /// After something that glues to what follows (`.`, `::`, a unary operator, `#`).
    Glue,
    /// After `,` or `;`.
    Separator,
}

fn write_tokens(ts: TokenStream, out: &mut String) {
    let mut prev = Prev::Open;
    let mut joint = false;
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Group(g) => {
                let call = g.delimiter() == Delimiter::Parenthesis || g.delimiter() == Delimiter::Bracket;
                match prev {
                    Prev::Operand if call => {}
                    Prev::Operand | Prev::BinaryOp | Prev::Separator => out.push(' '),
                    Prev::Open | Prev::Glue => {}
                }
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(g.stream(), out);
                if g.delimiter() == Delimiter::Brace && g.stream().is_empty() {
                    out.pop();
                    out.push('}');
                } else {
                    out.push_str(close);
                }
                prev = Prev::Operand;
                joint = false;
            }
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                if matches!(prev, Prev::Operand | Prev::BinaryOp | Prev::Separator) {
                    out.push(' ');
                }
                out.push_str(&tt.to_string());
                prev = Prev::Operand;
                joint = false;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                let continues = joint;
                joint = p.spacing() == Spacing::Joint;
                if continues {
                    // The second half of `==`, `&&`, `::`, `..`, `->`: same kind as the first.
                    out.push(c);
                    if prev == Prev::Glue && c == ':' {
                        prev = Prev::Glue;
                    }
                    continue;
                }
                let next_is_joint_part = joint && matches!(tokens.get(i + 1), Some(TokenTree::Punct(_)));
                match c {
                    '.' | ':' if next_is_joint_part || c == '.' => {
                        out.push(c);
                        prev = Prev::Glue;
                    }
                    ',' | ';' => {
                        out.push(c);
                        prev = Prev::Separator;
                    }
                    '\'' => {
                        if matches!(prev, Prev::Operand | Prev::BinaryOp | Prev::Separator) {
                            out.push(' ');
                        }
                        out.push(c);
                        prev = Prev::Glue;
                    }
                    '#' => {
                        out.push(c);
                        prev = Prev::Glue;
                    }
                    '!' if prev == Prev::Operand && matches!(tokens.get(i + 1), Some(TokenTree::Group(_))) => {
                        // A macro call: `vec![1, 2]`.
                        out.push(c);
                        prev = Prev::Glue;
                    }
                    '&' | '-' | '!' | '*' if !next_is_joint_part && prev != Prev::Operand => {
                        if prev == Prev::BinaryOp || prev == Prev::Separator {
                            out.push(' ');
                        }
                        out.push(c);
                        prev = Prev::Glue;
                    }
                    '&' if next_is_joint_part && prev != Prev::Operand && ends_unary_pair(&tokens, i) => {
                        // `&&x`: two references, not `and`.
                        if prev == Prev::BinaryOp || prev == Prev::Separator {
                            out.push(' ');
                        }
                        out.push(c);
                        prev = Prev::Glue;
                        joint = false;
                    }
                    _ => {
                        if prev != Prev::Open && prev != Prev::Glue {
                            out.push(' ');
                        }
                        out.push(c);
                        prev = Prev::BinaryOp;
                        if !next_is_joint_part {
                            joint = false;
                        }
                        // The operator's trailing space is written before the next token.
                    }
                }
            }
        }
    }
}

fn ends_unary_pair(tokens: &[TokenTree], i: usize) -> bool {
    matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '&')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expect: &str) {
        let ts: TokenStream = src.parse().expect("test input tokenizes");
        assert_eq!(tokens(ts), expect, "printing {src}");
    }

    #[test]
    fn prints_like_source() {
        check("c . price > 10.0", "c.price > 10.0");
        check("c.category_id == cat && c.price > 10.0", "c.category_id == cat && c.price > 10.0");
        check("c.first_name.starts_with(\"m\")", "c.first_name.starts_with(\"m\")");
        check("[1, 2].contains(&c.x)", "[1, 2].contains(&c.x)");
        check("!(c.a == -1)", "!(c.a == -1)");
        check("c.a - -1 >= x * 2", "c.a - -1 >= x * 2");
        check("c.o == Some(v)", "c.o == Some(v)");
        check("c.o.is_none() || !c.b", "c.o.is_none() || !c.b");
        check("std::string::String", "std::string::String");
        check("ids.contains(&&x)", "ids.contains(&&x)");
        check("vec![1, 2].contains(&c.x)", "vec![1, 2].contains(&c.x)");
        check("self.limit", "self.limit");
    }
}
