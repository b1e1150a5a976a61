//! Top-level names by file, and `import` (DESIGN §10).
//!
//! Every file a session reads through `import` gets a scope of its own: the names its own
//! statements bind, and the names of the files it imported. The prelude's scope is seen from
//! every scope (after the scope's own names). Everything else — the script named on the
//! command line, the REPL's entries and the files `:load` runs, texts AD reads back — shares
//! the main scope. A name written in a file is looked up in that file's scope, so a function
//! defined in an imported file reads that file's names wherever it is called from.
//!
//! Importing copies the names the imported file bound itself into the importer's scope (a
//! later binding in the importer replaces them, as any binding does). Names a file only
//! imported are not passed on: a file sees what it imports itself. A file runs once per
//! session; files are told apart by their canonical path.

use ad_ir::lower::value::{LVal, Name};
use ad_ir::lower::ScopeId;
use ad_syntax::FileId;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// The prelude's names, seen from every scope.
pub(crate) const PRELUDE_SCOPE: ScopeId = ScopeId(0);
/// The names of the script, the REPL and every text that is not an imported file.
pub(crate) const MAIN_SCOPE: ScopeId = ScopeId(1);
/// Imports nest at most this deep (a file importing a file importing ... ); deeper is an
/// error, not a stack overflow.
pub(crate) const MAX_IMPORT_DEPTH: usize = 100;

#[derive(Default)]
struct Scope {
    names: HashMap<Name, LVal>,
    /// The names this scope's own statements bound: what importing its file brings.
    own: HashSet<Name>,
    /// For each imported name, the scope that bound it.
    origin: HashMap<Name, ScopeId>,
    /// Its file's name in reports (empty for the prelude's and the main scope), and the
    /// path it was read from.
    file: String,
    path: Option<PathBuf>,
}

/// An import whose file is running now.
struct Running {
    /// The imported file's canonical path and its name in reports.
    canonical: PathBuf,
    name: String,
    scope: ScopeId,
    /// The scope the file's names go to once it has run.
    importer: ScopeId,
}

/// Where one import leads, once its path is resolved.
pub(crate) enum Resolved {
    /// The file ran before: its names have been brought into the importer's scope.
    Loaded,
    /// The file must run: where it is (`joined`: the importer's directory joined with the
    /// path written), what it is, and its name in reports.
    Run { joined: PathBuf, canonical: PathBuf, display: String },
}

pub(crate) struct Scopes {
    scopes: Vec<Scope>,
    of_file: HashMap<FileId, ScopeId>,
    /// For files read from disk (or named by a path), the path their imports are relative to.
    paths: HashMap<FileId, PathBuf>,
    /// Files that ran to the end, by canonical path.
    loaded: HashMap<PathBuf, ScopeId>,
    /// The imports running now, outermost first, and the file the outermost was imported
    /// from (canonical path and name, when it is a file).
    running: Vec<Running>,
    root: Option<(PathBuf, String)>,
    /// The directory of the last script read into the main scope: printed programs'
    /// imports are relative to it.
    main_dir: PathBuf,
}

impl Scopes {
    pub(crate) fn new(prelude: FileId) -> Scopes {
        let mut s = Scopes {
            scopes: vec![Scope::default(), Scope::default()],
            of_file: HashMap::new(),
            paths: HashMap::new(),
            loaded: HashMap::new(),
            running: Vec::new(),
            root: None,
            main_dir: PathBuf::new(),
        };
        s.of_file.insert(prelude, PRELUDE_SCOPE);
        s
    }

    pub(crate) fn of_file(&self, file: FileId) -> ScopeId {
        self.of_file.get(&file).copied().unwrap_or(MAIN_SCOPE)
    }

    /// Records that `file` was read from `path` (its imports are relative to its directory).
    pub(crate) fn set_path(&mut self, file: FileId, path: PathBuf) {
        self.main_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.paths.insert(file, path);
    }

    fn scope(&self, s: ScopeId) -> Option<&Scope> {
        self.scopes.get(s.0 as usize)
    }

    pub(crate) fn get(&self, scope: ScopeId, name: &str) -> Option<&LVal> {
        self.scope(scope)
            .and_then(|s| s.names.get(name))
            .or_else(|| self.scope(PRELUDE_SCOPE).and_then(|s| s.names.get(name)))
    }

    pub(crate) fn set(&mut self, scope: ScopeId, name: Name, value: LVal) {
        if let Some(s) = self.scopes.get_mut(scope.0 as usize) {
            s.origin.remove(&name);
            s.own.insert(name.clone());
            s.names.insert(name, value);
        }
    }

    pub(crate) fn remove(&mut self, scope: ScopeId, name: &str) {
        if let Some(s) = self.scopes.get_mut(scope.0 as usize) {
            s.names.remove(name);
            s.own.remove(name);
            s.origin.remove(name);
        }
    }

    /// The scope whose statements bound what `name` means in `scope`: two scopes that see
    /// a name with the same origin see the same value.
    pub(crate) fn origin(&self, scope: ScopeId, name: &str) -> Option<ScopeId> {
        let s = self.scope(scope)?;
        if s.own.contains(name) {
            return Some(scope);
        }
        if let Some(o) = s.origin.get(name) {
            return Some(*o);
        }
        self.scope(PRELUDE_SCOPE).is_some_and(|p| p.names.contains_key(name)).then_some(PRELUDE_SCOPE)
    }

    /// The name in reports of the file whose scope `scope` is (empty for the main scope).
    pub(crate) fn file_name(&self, scope: ScopeId) -> &str {
        self.scope(scope).map_or("", |s| s.file.as_str())
    }

    /// What a printed program needs so that its captures (name and the scope they were read
    /// in) mean, read in the main scope, what they mean in the program: the paths to import,
    /// relative to the main script's directory (none when the main scope sees every capture
    /// already). `Err` lists the names that no import can make mean the same (with their
    /// files): an import would also bring a name that another capture reads, or the name
    /// is the prelude's but the script binds it.
    pub(crate) fn imports_for(
        &self,
        captures: &[(ScopeId, Name)],
    ) -> Result<Vec<String>, Vec<(Name, String)>> {
        let mut files: Vec<ScopeId> = Vec::new();
        let mut foreign: Vec<(Name, String)> = Vec::new();
        let mut possible = true;
        for (scope, name) in captures {
            let want = self.origin(*scope, name);
            if want == self.origin(MAIN_SCOPE, name) {
                continue;
            }
            if !foreign.iter().any(|(n, _)| n == name) {
                foreign.push((name.clone(), want.map_or("", |o| self.file_name(o)).to_string()));
            }
            match want {
                Some(o) if self.scope(o).is_some_and(|s| s.path.is_some()) => {
                    if !files.contains(&o) {
                        files.push(o);
                    }
                }
                _ => possible = false,
            }
        }
        if foreign.is_empty() {
            return Ok(Vec::new());
        }
        // After the imports, each capture must see the binding the program read.
        for (scope, name) in captures {
            let mut seen = self.origin(MAIN_SCOPE, name);
            for o in &files {
                if self.scope(*o).is_some_and(|s| s.own.contains(name)) {
                    seen = Some(*o);
                }
            }
            possible &= seen == self.origin(*scope, name);
        }
        let paths: Option<Vec<String>> = files
            .iter()
            .map(|o| self.scope(*o).and_then(|s| s.path.as_deref()).and_then(|p| relative(&self.main_dir, p)))
            .collect();
        match paths {
            Some(p) if possible => Ok(p),
            _ => Err(foreign),
        }
    }

    /// Every name `scope` sees, the prelude's included.
    pub(crate) fn names(&self, scope: ScopeId) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        let mut seen = HashSet::new();
        for s in [scope, PRELUDE_SCOPE] {
            if let Some(s) = self.scope(s) {
                for n in s.names.keys() {
                    if seen.insert(n.clone()) {
                        out.push(n.clone());
                    }
                }
            }
        }
        out
    }

    /// Resolves `import "path"` written in `importer`: the file to run, or `Loaded` when it
    /// ran before (its names are then brought in). Errors are a message and a hint for the
    /// import statement.
    pub(crate) fn resolve(
        &mut self,
        importer: FileId,
        importer_name: &str,
        path: &str,
    ) -> Result<Resolved, (String, Option<&'static str>)> {
        let plain = |m: String| (m, None);
        if self.running.len() >= MAX_IMPORT_DEPTH {
            return Err((
                format!("imports nest too deeply (more than {MAX_IMPORT_DEPTH} files)"),
                Some("import the files a chain needs from fewer levels"),
            ));
        }
        if path.is_empty() {
            return Err(plain("cannot import a file without a name".into()));
        }
        let base = self.paths.get(&importer).and_then(|p| p.parent()).unwrap_or(Path::new(""));
        let joined = base.join(path);
        let display = display_path(&joined);
        let canonical = std::fs::canonicalize(&joined)
            .map_err(|e| plain(format!("cannot import `{display}`: {}", crate::session::io_reason(&e))))?;
        if self.running.is_empty() {
            self.root = self
                .paths
                .get(&importer)
                .and_then(|p| std::fs::canonicalize(p).ok())
                .map(|c| (c, importer_name.to_string()));
        }
        let chain: Vec<(&PathBuf, &str)> = self
            .root
            .iter()
            .map(|(c, n)| (c, n.as_str()))
            .chain(self.running.iter().map(|r| (&r.canonical, r.name.as_str())))
            .collect();
        if let Some(i) = chain.iter().position(|(c, _)| **c == canonical) {
            let names: Vec<&str> = chain[i..].iter().map(|(_, n)| *n).chain([chain[i].1]).collect();
            return Err((
                format!("import cycle: {}", names.join(" → ")),
                Some("move what the files share into a file that each of them imports"),
            ));
        }
        if let Some(&scope) = self.loaded.get(&canonical) {
            let into = self.of_file(importer);
            self.bring(scope, into);
            return Ok(Resolved::Loaded);
        }
        match std::fs::metadata(&canonical) {
            Ok(m) if m.is_dir() => {
                return Err(plain(format!("cannot import `{display}`: it is a directory")))
            }
            Ok(m) if !m.is_file() => {
                return Err(plain(format!("cannot import `{display}`: it is not a file")))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(plain(format!("cannot import `{display}`: {}", crate::session::io_reason(&e))))
            }
        }
        Ok(Resolved::Run { joined, canonical, display })
    }

    /// Starts running an imported file: it gets a scope of its own.
    pub(crate) fn start(
        &mut self,
        importer: FileId,
        file: FileId,
        joined: PathBuf,
        canonical: PathBuf,
        name: String,
    ) {
        let scope = ScopeId(self.scopes.len() as u32);
        self.scopes.push(Scope { file: name.clone(), path: Some(joined.clone()), ..Scope::default() });
        self.of_file.insert(file, scope);
        self.paths.insert(file, joined);
        let importer = self.of_file(importer);
        self.running.push(Running { canonical, name, scope, importer });
    }

    /// The innermost running import has ended; if it ran to the end, its names go to its
    /// importer and it is not run again.
    pub(crate) fn finish(&mut self, ok: bool) {
        let Some(r) = self.running.pop() else { return };
        if ok {
            self.loaded.insert(r.canonical, r.scope);
            self.bring(r.scope, r.importer);
        }
        if self.running.is_empty() {
            self.root = None;
        }
    }

    /// Copies the names `from` bound itself into `into`, where they are imported names.
    fn bring(&mut self, from: ScopeId, into: ScopeId) {
        let Some(f) = self.scope(from) else { return };
        let names: Vec<(Name, LVal)> =
            f.own.iter().filter_map(|n| f.names.get(n).map(|v| (n.clone(), v.clone()))).collect();
        if let Some(s) = self.scopes.get_mut(into.0 as usize) {
            for (n, v) in names {
                s.own.remove(&n);
                s.origin.insert(n.clone(), from);
                s.names.insert(n, v);
            }
        }
    }
}

/// `target` as a path relative to the directory `base` (both relative to the current
/// directory, or both absolute), folded as [`display_path`] folds; the canonical path when
/// that cannot be done by their text alone.
fn relative(base: &Path, target: &Path) -> Option<String> {
    let (b_prefix, b_abs, b) = parts(base);
    let (t_prefix, t_abs, t) = parts(target);
    let k = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    if b_prefix != t_prefix || b_abs != t_abs || b[k..].iter().any(|c| c == "..") {
        return std::fs::canonicalize(target).ok().map(|c| display_path(&c));
    }
    let up = std::iter::repeat_n("..".to_string(), b.len() - k);
    Some(up.chain(t[k..].iter().cloned()).collect::<Vec<_>>().join("/"))
}

/// A path as reports show it: `.` components dropped and `dir/..` folded, separators `/`.
pub(crate) fn display_path(p: &Path) -> String {
    let (prefix, absolute, parts) = parts(p);
    let joined = parts.join("/");
    if absolute {
        format!("{prefix}/{joined}")
    } else if joined.is_empty() && prefix.is_empty() {
        ".".into()
    } else {
        format!("{prefix}{joined}")
    }
}

/// A path's prefix (on Windows), whether it is absolute, and its folded components.
fn parts(p: &Path) -> (String, bool, Vec<String>) {
    let mut parts: Vec<String> = Vec::new();
    let mut prefix = String::new();
    let mut absolute = false;
    for c in p.components() {
        match c {
            Component::Prefix(x) => prefix = x.as_os_str().to_string_lossy().into_owned(),
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|l| l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".into());
                }
            }
            Component::Normal(x) => parts.push(x.to_string_lossy().into_owned()),
        }
    }
    (prefix, absolute, parts)
}

#[cfg(test)]
mod tests {
    use super::{display_path, relative};
    use std::path::Path;

    #[test]
    fn paths_display_folded() {
        assert_eq!(display_path(Path::new("a/./b/../c.ad")), "a/c.ad");
        assert_eq!(display_path(Path::new("../x.ad")), "../x.ad");
        assert_eq!(display_path(Path::new("a/../../x.ad")), "../x.ad");
        assert_eq!(display_path(Path::new("/a/../x.ad")), "/x.ad");
        assert_eq!(display_path(Path::new("x.ad")), "x.ad");
    }

    #[test]
    fn paths_relative_to_a_directory() {
        let rel = |b: &str, t: &str| relative(Path::new(b), Path::new(t));
        assert_eq!(rel("tests/m", "tests/m/lib/a.ad").as_deref(), Some("lib/a.ad"));
        assert_eq!(rel("tests/m/sub", "tests/m/lib/./a.ad").as_deref(), Some("../lib/a.ad"));
        assert_eq!(rel("", "lib/a.ad").as_deref(), Some("lib/a.ad"));
        assert_eq!(rel("/x/y", "/x/z/a.ad").as_deref(), Some("../z/a.ad"));
    }
}
