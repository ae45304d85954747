//! Purity of the control core: fails if any file under `src/core/` names a clock, I/O, an
//! async runtime, actors, metrics, ambient randomness, the environment or threads.
//!
//! `src/core/` must stay sans-I/O (DESIGN.md, "Layout"): time and seeds are arguments, so
//! the daemon and the simulator get the same decisions from the same observations. This
//! test reads every `.rs` file under `src/core/` (recursively) with `std::fs` and scans its
//! *code* for forbidden symbols.
//!
//! How comments are removed: a small Rust lexer walks the text and drops line comments
//! (`//`, `///`, `//!`) and block comments (`/* */`, nested, doc forms included), while it
//! keeps string literals (plain, byte, raw with any number of `#`), char literals and
//! lifetimes verbatim. Because it knows where strings start and end, a `//` inside a string
//! never starts a comment, so code after such a string on the same line is still scanned.
//! Strings are *not* removed: a forbidden symbol inside a string literal is reported too,
//! which errs on the side of failing. The lexer can only ever drop text that the Rust
//! compiler also treats as a comment, so it cannot hide code.
//!
//! How symbols are matched: whitespace is removed from the remaining code first, so
//! `std :: fs` or `Instant ::now` are caught like `std::fs`; grouped imports such as
//! `use std::{fs, io::Read}` are expanded so each root module is checked (`std::fs`,
//! `std::io`). Renaming the clock types (`use std::time::Instant as Clock`) would slip past
//! a textual check of `Instant::now`, so naming `std::time::Instant` or
//! `std::time::SystemTime` at all is also forbidden: the core's time is `Timestamp`.

use std::path::{Path, PathBuf};

/// Symbols that must not appear in the core's code (DESIGN.md's list plus the other ways
/// to reach a clock, the OS or ambient randomness).
const FORBIDDEN: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "tokio",
    "ractor",
    "std::fs",
    "std::net",
    "std::io",
    "metrics::",
    "thread_rng",
    "rand::rng",
    "std::env",
    "std::process",
    "std::thread",
    // Not in the design's list, but the only way to rename a clock out of reach of the
    // `Instant::now` / `SystemTime::now` patterns above.
    "std::time::Instant",
    "std::time::SystemTime",
];

/// One forbidden symbol found in code.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    /// Which forbidden symbol.
    symbol: &'static str,
    /// 1-based line of the code where it starts (approximate for grouped imports: the line
    /// of the `std::{` that opens the group).
    line: usize,
}

/// `src` with every comment removed; newlines inside comments are kept so that line
/// numbers still match the file.
fn strip_comments(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    // Copies a run of chars verbatim.
    let copy = |out: &mut String, from: usize, to: usize| out.extend(&c[from..to.min(c.len())]);
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        let prev_is_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if ch == '/' && next == Some('/') {
            // Line comment (also `///` and `//!`): drop up to, not including, the newline.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            // Block comment, nested as in Rust; keep its newlines for line numbers.
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && next == Some('r'))) && !prev_is_ident {
            // Possibly a raw string: r"..", r#".."#, br#".."#.
            let start = i;
            let mut j = if ch == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                j += 1;
                // Ends at a quote followed by the same number of hashes.
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                copy(&mut out, start, j);
                i = j;
            } else {
                out.push(ch);
                i += 1;
            }
        } else if ch == '"' {
            // Plain or byte string (the `b` was already copied): copy through the closing
            // quote, honouring backslash escapes.
            let start = i;
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            copy(&mut out, start, j + 1);
            i = j + 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime ('a): copy a char
            // literal whole so a quote inside it does not open a string.
            let start = i;
            let end = if next == Some('\\') {
                // Skip the backslash and the escaped char (which may be a quote).
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                Some(j + 1)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(e) => {
                    copy(&mut out, start, e);
                    i = e;
                }
                None => {
                    out.push(ch);
                    i += 1;
                }
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

/// Forbidden symbols in `src`'s code (comments ignored), in order of appearance.
fn scan(src: &str) -> Vec<Violation> {
    let code = strip_comments(src);
    // The code without whitespace, with the source line of each kept char.
    let mut squeezed = String::new();
    let mut lines = Vec::new();
    let mut line = 1;
    for ch in code.chars() {
        if ch == '\n' {
            line += 1;
        }
        if !ch.is_whitespace() {
            squeezed.push(ch);
            lines.push(line);
        }
    }
    // Byte offsets of `squeezed` to char indices (for the line table).
    let line_at = |byte: usize| lines[squeezed[..byte].chars().count()];

    let mut found = Vec::new();
    for &symbol in FORBIDDEN {
        for (at, _) in squeezed.match_indices(symbol) {
            found.push((at, symbol));
        }
    }
    // Grouped imports: `std::{fs, io::Read, time::{Instant}}` → check `std::fs`, ... .
    for (at, _) in squeezed.match_indices("std::{") {
        let body = &squeezed[at + "std::{".len()..];
        let mut depth = 1;
        let end = body
            .char_indices()
            .find(|&(_, ch)| {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(body.len(), |(k, _)| k);
        let expanded = expand_group("std::", &body[..end]);
        for path in expanded {
            for &symbol in FORBIDDEN {
                if path.starts_with(symbol) && !found.iter().any(|&(a, s)| a == at && s == symbol) {
                    found.push((at, symbol));
                }
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(at, symbol)| Violation {
            symbol,
            line: line_at(at),
        })
        .collect()
}

/// Flattens the inside of a use-group (whitespace already removed) into full paths:
/// `expand_group("std::", "fs,time::{Instant,Duration}")` gives `std::fs`,
/// `std::time::Instant`, `std::time::Duration`. Over-approximates on odd input, which
/// can only add reports.
fn expand_group(prefix: &str, body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (k, ch) in body.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    for item in items {
        if let Some(open) = item.find('{') {
            let inner = item[open + 1..]
                .strip_suffix('}')
                .unwrap_or(&item[open + 1..]);
            out.extend(expand_group(&format!("{prefix}{}", &item[..open]), inner));
        } else if !item.is_empty() {
            out.push(format!("{prefix}{item}"));
        }
    }
    out
}

/// Every `.rs` file under `dir`, recursively, sorted for stable messages.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn core_names_no_clock_io_runtime_or_ambient_randomness() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join("core");
    let files = rust_files(&core);
    assert!(
        files.len() >= 2,
        "expected the core's sources under {}, found {files:?}",
        core.display()
    );
    let mut report = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for v in scan(&src) {
            report.push(format!("{}:{}: `{}`", f.display(), v.line, v.symbol));
        }
    }
    assert!(
        report.is_empty(),
        "src/core must stay sans-I/O (DESIGN.md); forbidden symbols in code:\n{}",
        report.join("\n")
    );
}

/// The symbols `scan` reports for `src`, for compact assertions.
fn symbols(src: &str) -> Vec<&'static str> {
    scan(src).into_iter().map(|v| v.symbol).collect()
}

#[test]
fn scanner_catches_planted_violations() {
    let planted = "\
//! A file that looks innocent.
use std::time::Duration;

fn f() -> u64 {
    let t = std::time::Instant::now();
    t.elapsed().as_secs()
}
";
    let v = scan(planted);
    assert_eq!(
        v,
        vec![
            Violation {
                symbol: "std::time::Instant",
                line: 5
            },
            Violation {
                symbol: "Instant::now",
                line: 5
            },
        ]
    );
    for (src, want) in [
        ("async fn f() { tokio::spawn(g()); }", vec!["tokio"]),
        ("use ractor::Actor;", vec!["ractor"]),
        ("let s = std::fs::read(p);", vec!["std::fs"]),
        (
            "let s = std :: net :: TcpStream::connect(a);",
            vec!["std::net"],
        ),
        ("metrics::counter!(\"x\").increment(1);", vec!["metrics::"]),
        ("let r = rand::thread_rng();", vec!["thread_rng"]),
        ("let r = rand::rng();", vec!["rand::rng"]),
        ("let v = std::env::var(\"X\");", vec!["std::env"]),
        ("std::process::exit(1);", vec!["std::process"]),
        ("std::thread::sleep(d);", vec!["std::thread"]),
        ("let t = SystemTime :: now();", vec!["SystemTime::now"]),
        (
            "use std::{collections::VecDeque, io::Read};",
            vec!["std::io"],
        ),
        (
            "use std::{fmt, time::{Duration, SystemTime}};",
            vec!["std::time::SystemTime"],
        ),
        (
            "use std::time::Instant as Clock;",
            vec!["std::time::Instant"],
        ),
        // A `//` inside a string does not start a comment: the code after it is scanned.
        (
            "let u = \"http://x\"; let t = Instant::now();",
            vec!["Instant::now"],
        ),
        (
            "let u = r#\"a \" // b\"#; std::fs::remove_file(u);",
            vec!["std::fs"],
        ),
        // A quote in a char literal does not open a string that would swallow code.
        ("let q = '\"'; std::io::stdout();", vec!["std::io"]),
        (
            "let q = '\\''; let s = \"//\"; std::io::stdout();",
            vec!["std::io"],
        ),
        (
            "fn f<'a>(x: &'a str) { let _ = std::io::stdin(); }",
            vec!["std::io"],
        ),
        // Multi-line code is still one stream once whitespace is dropped.
        ("let t = Instant\n    ::now();", vec!["Instant::now"]),
    ] {
        assert_eq!(symbols(src), want, "scanning {src:?}");
    }
}

#[test]
fn scanner_ignores_comments_only() {
    for src in [
        "// Instant::now is never called here.\nfn f() {}",
        "/// Unlike tokio, this is synchronous.\nfn f() {}",
        "//! No std::fs in the core.\n",
        "/* metrics:: are emitted by the daemon */ fn f() {}",
        "/* outer /* nested std::net */ still comment std::env */ fn f() {}",
        "/** doc block: SystemTime::now */ fn f() {}",
        "fn f() {} // trailing: std::thread::spawn",
        "use std::{collections::VecDeque, fmt, time::Duration};",
        "let x = a / b; let y = c /d; // std::process",
    ] {
        assert_eq!(symbols(src), Vec::<&str>::new(), "scanning {src:?}");
    }
    // Lines stay aligned after a multi-line block comment.
    let v = scan("/*\n\n*/\nfn f() { tokio::spawn(g()); }");
    assert_eq!(v[0].line, 4);
}
