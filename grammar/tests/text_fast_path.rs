//! The text form's fast path against the pest grammar, differentially.
//!
//! `text::parse` first tries a hand-written reader and falls back to the pest
//! grammar whenever the reader declines. That is only sound if, for every input:
//!
//! * when the fast path answers, pest accepts the input and builds the identical
//!   `Lambda` (nodes, spans, names, literal values — compared through `Debug`, so
//!   `-0.0` and `0.0` differ);
//! * `text::parse` as a whole gives exactly what the pest path gives, errors included
//!   (checked on the corpus and variations of it: elsewhere the fast path's answer
//!   is compared with pest's, and a decline runs pest by construction).
//!
//! Inputs: the query texts found in the repository's tests and snapshots
//! (`fast_path_corpus.txt`), systematic mutations of each (every prefix, every
//! single-character deletion, whitespace variations, inserted tokens), and
//! generated lambdas, well-formed and not.

use memdex_grammar::text;
use memdex_testkit::soup::Soup;
use proptest::prelude::*;

/// What one input did, for the coverage figures.
#[derive(Default)]
struct Tally {
    inputs: usize,
    pest_accepted: usize,
    fast_answered: usize,
}

/// The differential check for one input. Panics (failing the test) on any
/// disagreement; returns whether pest accepted and whether the fast path answered.
fn agree(src: &str) -> (bool, bool) {
    let fast = text::parse_fast(src);
    let pest = text::parse_with_pest(src);
    if let Some(fast) = &fast {
        match &pest {
            Ok(reference) => assert_eq!(
                format!("{fast:?}"),
                format!("{reference:?}"),
                "the fast path built a different Lambda for {src:?}"
            ),
            Err(e) => assert!(pest.is_ok(), "the fast path answered {src:?}, which pest rejects: {e:?}"),
        }
    }
    (pest.is_ok(), fast.is_some())
}

/// `text::parse` as a whole (fast path, then pest) gives exactly what the pest path
/// gives, errors included.
fn dispatch_agrees(src: &str) {
    let combined = text::parse(src);
    let pest = text::parse_with_pest(src);
    assert_eq!(format!("{combined:?}"), format!("{pest:?}"), "text::parse differs from pest for {src:?}");
}

impl Tally {
    /// Prints the figures (shown with `--nocapture`).
    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} inputs, pest accepted {}, the fast path answered {}",
            self.inputs, self.pest_accepted, self.fast_answered
        );
    }

    fn add(&mut self, src: &str) {
        let (accepted, answered) = agree(src);
        self.inputs += 1;
        self.pest_accepted += usize::from(accepted);
        self.fast_answered += usize::from(answered);
    }
}

/// The corpus file's lines, unescaped (`\\`, `\n`, `\r`, `\t`); `#` lines are comments.
fn corpus() -> Vec<String> {
    include_str!("fast_path_corpus.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let mut out = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            }
            out
        })
        .collect()
}

/// The fast path reads the common queries itself: nearly every corpus text pest
/// accepts, and every one of these.
#[test]
fn the_fast_path_answers_the_common_queries() {
    for src in [
        "lambda c: c.category_id == cat and c.price > 10.0 and not c.name.startswith('x')",
        r#"lambda c: c.category_id == cat and c.price > 10.0 and c.first_name.startswith("m")"#,
        "lambda c: c.x in (1, 2) or c.y is not None",
        "lambda c: c.s.lower().endswith('é\\n') and len(c.s) >= -9223372036854775808",
        "lambda m: avg(m.runs)",
        "  lambda c :\n\tnot (c.a - -1.5e3 * 2 % 7 != x)  ",
    ] {
        let (accepted, answered) = agree(src);
        assert!(accepted && answered, "{src:?}: pest accepted {accepted}, fast answered {answered}");
    }
    let mut tally = Tally::default();
    for src in corpus() {
        tally.add(&src);
        dispatch_agrees(&src);
        dispatch_agrees(&src.replace(' ', "\n"));
        let half = src.char_indices().nth(src.chars().count() / 2).map_or(0, |(i, _)| i);
        dispatch_agrees(&src[..half]);
    }
    tally.report("corpus");
    assert!(tally.inputs >= 300, "the corpus has {} texts", tally.inputs);
    // A few accepted texts use what the fast path leaves to pest (`5.lower()`, `assert`).
    assert!(
        tally.fast_answered * 100 >= tally.pest_accepted * 95,
        "the fast path answered {} of the {} corpus texts pest accepts",
        tally.fast_answered,
        tally.pest_accepted
    );
}

/// Every prefix of every corpus text.
#[test]
fn truncations_agree() {
    let mut tally = Tally::default();
    for src in corpus() {
        for (i, _) in src.char_indices() {
            tally.add(&src[..i]);
        }
    }
    tally.report("truncations");
    assert!(tally.fast_answered > 0);
}

/// Every single-character deletion from every corpus text.
#[test]
fn deletions_agree() {
    let mut tally = Tally::default();
    for src in corpus() {
        for (i, c) in src.char_indices() {
            tally.add(&format!("{}{}", &src[..i], &src[i + c.len_utf8()..]));
        }
    }
    tally.report("deletions");
    assert!(tally.fast_answered > 0 && tally.pest_accepted > 0);
}

/// Whitespace in every form the grammar knows (and some it does not), around and
/// between the tokens of every corpus text, and a `#` comment, which the language
/// does not have.
#[test]
fn whitespace_variations_agree() {
    let mut tally = Tally::default();
    for src in corpus() {
        for ws in ["\t", "\n", "\r\n", "   ", "", "\u{a0}", "\x0b", "\x0c"] {
            tally.add(&src.replace(' ', ws));
            tally.add(&format!("{ws}{src}{ws}"));
        }
        tally.add(&format!("{src} # a comment"));
        tally.add(&format!("# a comment\n{src}"));
    }
    tally.report("whitespace variations");
    assert!(tally.fast_answered > 0);
}

/// Tokens inserted at pseudo-random positions of every corpus text (a fixed
/// sequence, so a failure reproduces).
#[test]
fn inserted_tokens_agree() {
    let soup = Soup::new("c", &["x"]);
    let tokens = soup.vocabulary();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        // xorshift64*: enough to spread the insertions.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    };
    let mut tally = Tally::default();
    for src in corpus() {
        let boundaries: Vec<usize> = src.char_indices().map(|(i, _)| i).chain([src.len()]).collect();
        for _ in 0..24 {
            let at = boundaries[next(boundaries.len())];
            let token = &tokens[next(tokens.len())];
            tally.add(&format!("{}{token}{}", &src[..at], &src[at..]));
        }
    }
    tally.report("inserted tokens");
    assert!(tally.fast_answered > 0 && tally.pest_accepted > 0);
}

/// Bracket nesting at and beyond the bound, long operator chains around the
/// depth bound, and other inputs at the edges of what the fast path reads.
#[test]
fn bounds_and_edges_agree() {
    for depth in [1, 10, 63, 64, 65, 100] {
        agree(&format!("lambda c: {}c.x{} == 1", "(".repeat(depth), ")".repeat(depth)));
        agree(&format!("lambda c: c.x in {}1{}", "[".repeat(depth), "]".repeat(depth)));
    }
    for n in [10, 150, 198, 199, 200, 201, 260] {
        agree(&format!("lambda c: {}c.x == 1", "not ".repeat(n)));
        agree(&format!("lambda c: {}c.x == 1", "-".repeat(n)));
        agree(&format!("lambda c: c.x == 1{}", " + 1".repeat(n)));
        agree(&format!("lambda c: c.x == 1{}", " or c.y == 2".repeat(n)));
    }
    for src in [
        "",
        "lambda",
        "lambda c",
        "lambda c:",
        "lambdac: c.x",
        "lambda c, d: c.x",
        "lambda c: c",
        "lambda c: c()",
        "lambda c: c.x.y",
        "lambda c: c.x(1)",
        "lambda c: 5.lower()",
        "lambda c: 5 .lower() == c.x",
        "lambda c: c.assert == 1",
        "lambda c: c.x == -9223372036854775808",
        "lambda c: c.x == 9223372036854775808",
        "lambda c: c.x == -(9223372036854775808)",
        "lambda c: c.x == 1.e5",
        "lambda c: c.x == 1__0",
        "lambda c: c.x == 0_0",
        "lambda c: c.x == -0.0",
        "lambda c: c.x in ((1, 2))",
        "lambda c: c.x in (ids)",
        "lambda c: c.x in -(1, 2)",
        "lambda c: c.x in [1, 2].y",
        "lambda c: c.x is (None)",
        "lambda c: c.x is not(None)",
        "lambda c: c.x is nothing",
        "lambda c: c.x not  \n in y",
        "lambda c: c.x notin y",
        "lambda c: c.x < c.y < c.z",
        "lambda c: 'a\\\nb' == c.x",
        "lambda c: 'a\\U0001F600\\x41\\u00e9' == c.x",
        "lambda c: 'a\\ud800' == c.x",
        "lambda c: '\\é' == c.x",
        "lambda c: 'é' in c.s and c.s == \"ü\\\"\"",
        "lambda c: c.é == 1",
        "lambda c: c.xé == 1",
        "lambda c: c.x == 1é",
        "lambda c: not(c.x)",
        "lambda c: c.x=='a'and c.y==1",
        "lambda c: c.x == 1and c.y",
        "lambda c: count() == 1",
        "lambda c: sum(c.x, c.y)",
        "lambda c: len() == 1",
        "lambda c: x.startswith('a')",
        "lambda c: x.y",
        "lambda c: (c.x).lower() == 'a'",
        "lambda c: (c.x, c.y)",
        "lambda c: [c.x]",
        "lambda c: c.x == True.lower()",
    ] {
        agree(src);
    }
}

/// Generated text: a term of the language, written with random whitespace.
fn term() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["c.a", "c.name", "c.x_1", "x", "ids", "cat", "c", "len", "True", "False", "None"])
            .prop_map(str::to_owned),
        prop::sample::select(vec![
            "0",
            "7",
            "1_000",
            "007",
            "1.5",
            "1.",
            ".5",
            "2.5E-3",
            "1e999",
            "9223372036854775807",
            "9223372036854775808",
            "0.0",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "'a'",
            "\"b\"",
            "''",
            "'%_'",
            "'\\n\\t\\\\'",
            "'\\x41\\u00e9\\U0001F600'",
            "'é🙂'",
            "'\\q'",
            "'\\x4'",
            "\"it's\"",
            "'a\\'b'",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        let ws = prop::sample::select(vec!["", " ", "  ", "\t", "\n", " \r\n "]);
        prop_oneof![
            (inner.clone(), ws.clone(), prop::sample::select(BINARY.to_vec()), ws.clone(), inner.clone())
                .prop_map(|(a, w1, op, w2, b)| format!("{a}{w1}{op}{w2}{b}")),
            (prop::sample::select(vec!["not ", "-", "- ", "not(", "-("]), inner.clone())
                .prop_map(|(op, a)| { if op.ends_with('(') { format!("{op}{a})") } else { format!("{op}{a}") } }),
            (inner.clone(), ws.clone()).prop_map(|(a, w)| format!("({w}{a}{w})")),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("({})", v.join(", "))),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            (
                prop::sample::select(vec!["len", "ieq", "count", "avg", "sum", "min", "max", "foo"]),
                prop::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (
                inner.clone(),
                prop::sample::select(vec![".startswith", ".endswith", ".lower", ".upper", ". lower"]),
                prop::collection::vec(inner, 0..2)
            )
                .prop_map(|(r, m, args)| format!("{r}{m}({})", args.join(", "))),
        ]
    })
}

const BINARY: &[&str] = &[
    "==", "!=", "<", "<=", ">", ">=", "in", "not in", "not  in", "is", "is not", "and", "or", "+", "-", "*", "/", "%",
    "=", "<>", "**", "&&",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_lambdas_agree(body in term(), lead in prop::sample::select(vec!["", " ", "\n"])) {
        agree(&format!("{lead}lambda c:{lead}{body}{lead}"));
    }

    #[test]
    fn generated_token_soup_agrees(src in Soup::new("c", &["x"]).lambda(14, "")) {
        agree(&src);
    }
}
