//! The repository's shape, checked: the README's architecture map names
//! every source file, and no module imports a module that imports it back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers of the tests below, not #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, recursively, as repo-relative paths.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = dir.join(e.file_name());
        if e.path().is_dir() {
            rust_files(root, &rel, out);
        } else if rel.extension().is_some_and(|x| x == "rs") {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The source directories: every crate's `src/` (and the fuzz targets).
fn source_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("app/src"), PathBuf::from("server/src"), PathBuf::from("frontend/src")];
    let mut crates: Vec<_> = std::fs::read_dir(root.join("crates")).unwrap().flatten().map(|e| e.file_name()).collect();
    crates.sort();
    for c in crates {
        for sub in ["src", "fuzz_targets"] {
            let d = Path::new("crates").join(&c).join(sub);
            if root.join(&d).is_dir() {
                dirs.push(d);
            }
        }
    }
    dirs
}

#[test]
fn the_readme_map_lists_every_source_file() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("\n## Architecture map").expect("README has an \"## Architecture map\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
    let map = &rest[..end];
    let mut files = Vec::new();
    for d in source_dirs(&root) {
        rust_files(&root, &d, &mut files);
    }
    assert!(files.len() > 100, "found only {} source files: is the walk right?", files.len());
    let missing: Vec<_> = files.iter().filter(|f| !map.contains(f.as_str())).collect();
    assert!(missing.is_empty(), "README's architecture map does not name these source files: {missing:#?}");
}

/// One crate's modules: module path (`a::b`) → file.
struct Crate {
    modules: BTreeMap<Vec<String>, String>,
}

impl Crate {
    fn load(root: &Path, src: &Path) -> Crate {
        let mut files = Vec::new();
        rust_files(root, src, &mut files);
        let prefix = format!("{}/", src.to_string_lossy());
        let mut modules = BTreeMap::new();
        for f in files {
            let rel = f.strip_prefix(&prefix).unwrap_or(&f).trim_end_matches(".rs").to_string();
            let mut path: Vec<String> = rel.split('/').map(str::to_string).collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                path.pop();
            }
            if path.first().is_some_and(|p| p == "bin") {
                continue; // binaries are crates of their own
            }
            modules.insert(path, f);
        }
        Crate { modules }
    }

    /// The module a path names (its longest module prefix).
    fn resolve(&self, path: &[String]) -> Option<&String> {
        (0..=path.len()).rev().find_map(|n| self.modules.get(&path[..n]))
    }
}

/// The source without comments, string literals and `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut in_reexport = false;
    for line in text.lines() {
        // A re-export (`pub use child::Item;`) makes a facade, not a use:
        // the module re-exporting a child is not importing it.
        let t = line.trim_start();
        if in_reexport || t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            in_reexport = !line.contains(';');
            out.push('\n');
            continue;
        }
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Paths a file's code names, as segment lists (`crate::a::b`,
/// `super::x`, `child::y`, and the members of `use …::{…}` groups).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            // A path starts here: read `ident(::ident)*` and a trailing group.
            let mut prefix: Vec<String> = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < bytes.len() && is_ident(bytes[j]) {
                    j += 1;
                }
                prefix.push(bytes[s..j].iter().collect());
                if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' {
                    j += 2;
                    if bytes[j] == '{' {
                        let mut depth = 0;
                        let mut k = j;
                        while k < bytes.len() {
                            match bytes[k] {
                                '{' => depth += 1,
                                '}' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            k += 1;
                        }
                        let inner: String = bytes[j + 1..k.min(bytes.len())].iter().collect();
                        for member in split_top(&inner) {
                            let m = member.trim();
                            if m.is_empty() {
                                continue;
                            }
                            let paths = named_paths(m);
                            if paths.is_empty() {
                                // `Item`, `Item as Alias`, `self`, `*`: the group's module (or an item in it).
                                let mut full = prefix.clone();
                                let name = m.split_whitespace().next().unwrap_or("");
                                if name != "self" && name != "*" {
                                    full.push(name.to_string());
                                }
                                out.push(full);
                            }
                            for p in paths {
                                let mut full = prefix.clone();
                                full.extend(p);
                                out.push(full);
                            }
                        }
                        j = k;
                        break;
                    }
                    if j < bytes.len() && is_ident(bytes[j]) {
                        continue;
                    }
                }
                break;
            }
            if prefix.len() > 1 {
                out.push(prefix);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Splits a `use` group's members at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

/// The file → file imports inside one crate.
fn import_graph(root: &Path, src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let krate = Crate::load(root, src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &krate.modules {
        let code = code_of(&std::fs::read_to_string(root.join(file)).unwrap());
        let edges = graph.entry(file.clone()).or_default();
        for path in named_paths(&code) {
            let mut abs: Vec<String> = match path[0].as_str() {
                "crate" => Vec::new(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                "self" => module.clone(),
                first => {
                    let mut child = module.clone();
                    child.push(first.to_string());
                    if !krate.modules.contains_key(&child) {
                        continue; // another crate, a type or a local item
                    }
                    module.clone()
                }
            };
            let rest = if matches!(path[0].as_str(), "crate" | "super" | "self") { &path[1..] } else { &path[..] };
            let mut segs = rest.iter().peekable();
            while segs.peek().is_some_and(|s| *s == "super") {
                abs.pop();
                segs.next();
            }
            abs.extend(segs.cloned());
            if let Some(target) = krate.resolve(&abs) {
                if target != file {
                    edges.insert(target.clone());
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = repo_root();
    let mut found = Vec::new();
    for d in source_dirs(&root) {
        if d.ends_with("fuzz_targets") {
            continue;
        }
        let graph = import_graph(&root, &d);
        for comp in cycles(&graph) {
            found.push((graph.clone(), comp));
        }
    }
    let report: Vec<String> = found
        .iter()
        .map(|(graph, comp)| {
            let edges: Vec<String> = comp
                .iter()
                .flat_map(|f| graph[f].iter().filter(|t| comp.contains(t)).map(move |t| format!("  {f} -> {t}")))
                .collect();
            edges.join("\n")
        })
        .collect();
    assert!(found.is_empty(), "import cycles between modules (edges inside each cycle):\n{}", report.join("\n\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let dir = std::env::temp_dir().join(format!("sheepdog-layout-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::{inner::Thing, Other};\n").unwrap();
    std::fs::write(src.join("b/mod.rs"), "pub mod inner;\npub struct Other;\n").unwrap();
    std::fs::write(src.join("b/inner.rs"), "// crate::a::X in a comment is not an import\nuse super::super::a::X;\n")
        .unwrap();
    std::fs::write(src.join("c.rs"), "fn f() { let s = \"crate::a::X\"; }\n").unwrap();
    let graph = import_graph(&dir, Path::new("src"));
    let found = cycles(&graph);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, vec![vec!["src/a.rs".to_string(), "src/b/inner.rs".to_string()]], "{graph:#?}");
}
