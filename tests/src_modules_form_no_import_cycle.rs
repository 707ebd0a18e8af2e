//! The preload library's modules (`src/**/*.rs`) import each other in layers, never in a
//! circle: a module can then be read, tested and changed knowing only what lies below it.
//!
//! Every path that starts with `crate::`, `$crate::` or `super::` (in `use` items, grouped
//! `use` trees and paths in code alike; comments and literals aside) is an edge from the file
//! it is written in to the module file it names. Paths that name the crate root's own items
//! (its re-exports of other crates) and a file's references to itself are not edges. The
//! test prints every edge and fails on any strongly connected group of modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A module's path from the crate root (`["hooks", "io"]`); empty for the root.
type ModPath = Vec<String>;

/// Every module file under `dir`, keyed by module path, with its text.
fn module_files(dir: &Path, prefix: &ModPath, out: &mut BTreeMap<ModPath, String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file name")
            .to_string();
        if path.is_dir() {
            let mut sub = prefix.clone();
            sub.push(name);
            module_files(&path, &sub, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = prefix.clone();
            // lib.rs is the root and mod.rs its directory's module.
            if !(stem == "mod" || (prefix.is_empty() && stem == "lib")) {
                module.push(stem.to_string());
            }
            let text = fs::read_to_string(&path).expect("readable source");
            out.insert(module, text);
        }
    }
}

/// The source with comments and string and character literals blanked out, so that only
/// code is searched for paths.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let at = |j: usize| c.get(j).copied().unwrap_or('\0');
    while i < c.len() {
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
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
                    i += 1;
                }
            }
            out.push(' ');
        } else if at(i) == 'r'
            && (at(i + 1) == '"' || at(i + 1) == '#')
            && (i == 0 || !ident(c[i - 1]))
        {
            // A raw string r"..." or r#"..."#: it ends at a quote followed by as many #.
            let mut hashes = 0;
            i += 1;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            if at(i) != '"' {
                // r#ident, a raw identifier.
                out.push('r');
                continue;
            }
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if at(i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(i) == '\'' && (at(i + 1) == '\\' || (at(i + 1) != '\'' && at(i + 2) == '\'')) {
            // A character literal ('x', '\n', '\u{..}'); anything else is a lifetime.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Other(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphanumeric() || ch == '_' || (ch == '$' && c.get(i + 1) == Some(&'c')) {
            // `$crate` counts as `crate`: a macro's path into this crate.
            let start = if ch == '$' { i + 1 } else { i };
            i = start;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(c[start..i].iter().collect()));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Token::Other(ch));
            }
            i += 1;
        }
    }
    out
}

/// Reads the path (or `use` tree) starting at `toks[*i]` and adds each complete path in it
/// to `leaves`; leaves `*i` after it.
fn use_tree(toks: &[Token], i: &mut usize, prefix: &[String], leaves: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(*i) {
            Some(Token::Ident(name)) => {
                path.push(name.clone());
                *i += 1;
            }
            Some(Token::Other('*')) => {
                *i += 1;
                break;
            }
            Some(Token::Other('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        None => return,
                        Some(Token::Other('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Token::Other(',')) => *i += 1,
                        Some(_) => use_tree(toks, i, &path, leaves),
                    }
                }
            }
            _ => break,
        }
        if toks.get(*i) == Some(&Token::PathSep) {
            *i += 1;
        } else {
            break;
        }
    }
    leaves.push(path);
}

/// The import edges of module `module` whose text is `src`, as the module files they name
/// (`files`).
fn edges_of(module: &ModPath, src: &str, files: &BTreeSet<ModPath>) -> BTreeSet<ModPath> {
    let toks = tokens(&code_only(src));
    let mut edges = BTreeSet::new();
    // Inline modules (`mod tests { ... }`) as (name, brace depth of their body).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Token::Other('{') => {
                depth += 1;
                i += 1;
            }
            Token::Other('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
            }
            Token::Ident(m)
                if m == "mod"
                    && matches!(toks.get(i + 1), Some(Token::Ident(_)))
                    && toks.get(i + 2) == Some(&Token::Other('{')) =>
            {
                let Some(Token::Ident(name)) = toks.get(i + 1) else {
                    unreachable!()
                };
                inline.push((name.clone(), depth + 1));
                depth += 1;
                i += 3;
            }
            Token::Ident(first)
                if (first == "crate" || first == "super")
                    && toks.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || toks[i - 1] != Token::PathSep) =>
            {
                let mut leaves = Vec::new();
                use_tree(&toks, &mut i, &[], &mut leaves);
                let here: ModPath = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(n, _)| n.clone()))
                    .collect();
                for leaf in leaves {
                    if let Some(target) = resolve(&here, &leaf, files) {
                        if !target.is_empty() && &target != module {
                            edges.insert(target);
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    edges
}

/// The module file a path written in module `here` names: the longest module-file prefix of
/// its absolute form.
fn resolve(here: &ModPath, path: &[String], files: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut abs: ModPath = Vec::new();
    let mut rest = path.iter().peekable();
    match rest.next()?.as_str() {
        "crate" => {}
        "super" => {
            abs = here.clone();
            abs.pop()?;
            while rest.peek().is_some_and(|s| *s == "super") {
                rest.next();
                abs.pop()?;
            }
        }
        _ => return None,
    }
    abs.extend(rest.filter(|s| *s != "self").cloned());
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|p| files.contains(p))
}

/// Every module's import edges.
fn graph(sources: &BTreeMap<ModPath, String>) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let files: BTreeSet<ModPath> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(m, src)| (m.clone(), edges_of(m, src, &files)))
        .collect()
}

/// The groups of two or more modules that reach each other (Tarjan's strongly connected
/// components).
fn cycles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        graph: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn modules(list: &[(&str, &str)]) -> BTreeMap<ModPath, String> {
    list.iter()
        .map(|(m, src)| {
            let path = m.split("::").filter(|s| !s.is_empty()).map(String::from);
            (path.collect(), src.to_string())
        })
        .collect()
}

#[test]
fn src_modules_form_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    module_files(&src, &Vec::new(), &mut sources);
    let graph = graph(&sources);
    let mut report = String::new();
    for (from, to) in &graph {
        let to: Vec<String> = to.iter().map(name).collect();
        report += &format!("{} -> {}\n", name(from), to.join(", "));
    }
    println!("{report}");
    // The check must be looking at real imports: the hooks reach the fd table.
    let hooks_io = vec!["hooks".to_string(), "io".to_string()];
    assert!(
        graph
            .get(&hooks_io)
            .is_some_and(|e| e.contains(&vec!["fdtable".to_string()])),
        "the edge hooks::io -> fdtable was not found; the parser misreads src/:\n{report}"
    );
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|group| {
            let members: BTreeSet<&ModPath> = group.iter().collect();
            let inner: Vec<String> = group
                .iter()
                .flat_map(|m| {
                    graph[m]
                        .iter()
                        .filter(|t| members.contains(t))
                        .map(move |t| format!("{} -> {}", name(m), name(t)))
                })
                .collect();
            format!(
                "{{{}}} through {}",
                group.iter().map(name).collect::<Vec<_>>().join(", "),
                inner.join("; ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "src/ modules import each other in a circle:\n{}\nall edges:\n{report}",
        described.join("\n")
    );
}

#[test]
fn the_check_finds_a_planted_cycle_and_ignores_comments_and_literals() {
    let sources = modules(&[
        ("", "mod a; mod b; mod c; mod d; pub use other as reexport;"),
        ("a", "use crate::{b::{self, X}, reexport::Y};\nfn f() {}"),
        (
            "b",
            "// use crate::d;\n/* crate::d::f() */\nconst S: &str = \"crate::d::f\";\n\
             const R: &str = r#\"crate::d\"#; const Q: char = '\"';\n\
             fn g<'a>(x: &'a u8) { c::h(); crate::c::h() }",
        ),
        ("c", "macro_rules! m { () => { $crate::a::f() } }"),
        (
            "d",
            "pub(crate) fn f() {} #[cfg(test)] mod tests { use super::*; }",
        ),
        ("c::e", "use super::super::d::f; use super::*;"),
    ]);
    let graph = graph(&sources);
    let edges = |m: &str| -> Vec<String> {
        let key: ModPath = m.split("::").map(String::from).collect();
        graph[&key].iter().map(name).collect()
    };
    assert_eq!(edges("a"), ["b"], "grouped use, self, root re-export");
    assert_eq!(edges("b"), ["c"], "comments, strings, raw strings, chars");
    assert_eq!(edges("c"), ["a"], "$crate in a macro");
    assert!(
        edges("d").is_empty(),
        "an inline module's super is its own file"
    );
    assert_eq!(edges("c::e"), ["c", "d"], "super::super");
    let key = |m: &str| -> ModPath { vec![m.to_string()] };
    assert_eq!(cycles(&graph), vec![vec![key("a"), key("b"), key("c")]]);
}
