//! The files mutations start from: the examples, the golden files, and earlier regressions
//! and findings. Each is read once, with the `def`s it declares, so that `ad derive` can be
//! pointed at its functions.

use std::path::{Path, PathBuf};

/// A parameter of a `def` found in a corpus file.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    /// Whether it has a shape annotation (then `ad derive` needs no `--shape` for it).
    pub annotated: bool,
    /// The dimension names its annotation uses (`n` in `x: [n, 3]`).
    pub dim_names: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct DefHeader {
    pub name: String,
    pub params: Vec<Param>,
}

#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// The path relative to the repository, for messages.
    pub name: String,
    pub text: Vec<u8>,
    pub defs: Vec<DefHeader>,
}

#[derive(Clone, Debug, Default)]
pub struct Corpus {
    pub files: Vec<CorpusFile>,
}

impl Corpus {
    /// The directories (under the repository's root) the long run mutates: the examples,
    /// the golden files, and the fuzzer's own regressions and open findings.
    pub const ALL: &'static [&'static str] =
        &["examples", "tests/golden", "tests/fuzz/regressions", "tests/fuzz/findings"];

    /// Reads the `.ad` files of `dirs` under `root`. Files that write files (`write_csv`)
    /// are left out: mutating their file names could make a case write anywhere.
    pub fn load(root: &Path, dirs: &[&str]) -> Corpus {
        let mut paths = Vec::new();
        for dir in dirs {
            collect(&root.join(dir), &mut paths);
        }
        paths.sort();
        let mut files = Vec::new();
        for p in paths {
            let Ok(text) = std::fs::read(&p) else { continue };
            if text.windows(9).any(|w| w == b"write_csv") {
                continue;
            }
            let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let defs = def_headers(&String::from_utf8_lossy(&text));
            files.push(CorpusFile { name, text, defs });
        }
        Corpus { files }
    }

    /// The corpus without the files whose path contains `fragment` (`examples/bench/`:
    /// benchmarks are sized for release builds and only time out in debug ones).
    pub fn without(mut self, fragment: &str) -> Corpus {
        self.files.retain(|f| !f.name.contains(fragment));
        self
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "ad") {
            out.push(p);
        }
    }
}

/// The `def` headers of a text: `def NAME(PARAMS)` at the start of a line.
pub fn def_headers(text: &str) -> Vec<DefHeader> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("def ") else { continue };
        let Some(open) = rest.find('(') else { continue };
        let name = rest[..open].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        // The parameter list ends at the parenthesis that closes the first one.
        let mut depth = 0;
        let mut close = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        let mut params = Vec::new();
        for p in split_top_level(&rest[open + 1..close]) {
            let (pname, annot) = match p.split_once(':') {
                Some((n, a)) => (n.trim(), Some(a)),
                None => (p.trim(), None),
            };
            if pname.is_empty() {
                continue;
            }
            let dim_names = annot
                .map(|a| {
                    a.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .filter(|w| w.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_'))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            params.push(Param { name: pname.to_string(), annotated: annot.is_some(), dim_names });
        }
        out.push(DefHeader { name: name.to_string(), params });
    }
    out
}

/// Splits at the commas outside brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        parts.push(&text[start..]);
    }
    parts
}
