//! A session: the top-level names, the specialisation cache, the random generator and the
//! output stream. The CLI and the REPL both drive one.

use crate::cache::Cache;
use crate::modules::{Resolved, Scopes, MAIN_SCOPE};
use ad_eval::rng::Rng;
use ad_ir::lower::builtins::Effect;
use ad_ir::lower::spec::{flatten, Spec};
use ad_ir::lower::value::{LVal, Name};
use ad_ir::lower::{self, Host, ScopeId};
use ad_ir::{Array, Prim};
use ad_syntax::ast::{Def, Module};
use ad_syntax::{Diagnostic, FileId, SourceMap, Span};
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

pub const PRELUDE: &str = include_str!("prelude.ad");

pub struct Session {
    pub sources: SourceMap,
    /// Top-level names, by scope (one per imported file), and the imports running.
    scopes: Scopes,
    pub(crate) cache: Cache,
    rng: Rng,
    /// Significant digits when printing values.
    pub precision: usize,
    out: Box<dyn Write>,
    start: Instant,
    /// The definitions being lowered (the recursion check).
    lowering: Vec<Rc<Def>>,
    output_closed: bool,
    /// The figure being built by plotting calls, and the last one completed.
    pub(crate) figures: crate::plot::Figures,
    /// Set when the output is a terminal: figures are drawn on it.
    pub(crate) screen: Option<crate::plot::Screen>,
    /// The progress bar of long top-level loops.
    progress: crate::progress::Progress,
}

impl Session {
    /// A session writing `print` output and echoed values to `out`, with the prelude loaded.
    pub fn new(out: Box<dyn Write>) -> Session {
        ad_eval::init();
        let mut s = Session {
            sources: SourceMap::new(),
            scopes: Scopes::new(lower::PRELUDE_FILE),
            cache: Cache::default(),
            rng: Rng::new(0),
            precision: ad_ir::display::DEFAULT_PRECISION,
            out,
            start: Instant::now(),
            lowering: Vec::new(),
            output_closed: false,
            figures: Default::default(),
            screen: None,
            progress: Default::default(),
        };
        let prelude = s.sources.add("<prelude>", PRELUDE);
        debug_assert_eq!(prelude, lower::PRELUDE_FILE);
        if let Err(e) = s.run_file_id(prelude) {
            // The prelude is part of the program; a failure here is a bug in AD itself.
            panic!("internal error: the prelude does not load: {e:?}");
        }
        s
    }

    /// Adds a source text. `name` is the path it was read from, which its imports are
    /// relative to, or a name in angle brackets (`<repl:3>`) for text that is not a file
    /// (whose imports are relative to the current directory).
    pub fn add_source(&mut self, name: &str, text: &str) -> FileId {
        let file = self.sources.add(name, text);
        if !name.starts_with('<') {
            self.scopes.set_path(file, name.into());
        }
        file
    }

    /// Parses a source text (named as for [`Session::add_source`]), reporting every syntax
    /// error.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(FileId, Module), Vec<Diagnostic>> {
        let file = self.add_source(name, text);
        let (module, errors) = ad_syntax::parser::parse(file, text);
        if errors.is_empty() {
            Ok((file, module))
        } else {
            Err(errors)
        }
    }

    fn run_file_id(&mut self, file: FileId) -> Result<(), Vec<Diagnostic>> {
        let text = self.sources.text(file).to_string();
        let (module, errors) = ad_syntax::parser::parse(file, &text);
        if !errors.is_empty() {
            return Err(errors);
        }
        self.run_module(&module, &mut |_, _| {}).map_err(|e| vec![e])
    }

    /// Runs a script. Stops at the first runtime error.
    pub fn run_source(&mut self, name: &str, text: &str) -> Result<(), Vec<Diagnostic>> {
        let (_, module) = self.parse(name, text)?;
        self.run_module(&module, &mut |_, _| {}).map_err(|e| vec![e])
    }

    /// Runs statements in order; `echo` receives the value of each expression statement
    /// (the REPL prints them).
    pub fn run_module(
        &mut self,
        module: &Module,
        echo: &mut dyn FnMut(&mut Session, LVal),
    ) -> Result<(), Diagnostic> {
        for stmt in &module.stmts {
            if let Some(v) = lower::run_stmt(self, stmt)? {
                echo(self, v);
            }
        }
        Ok(())
    }

    /// Shape-checks a script without running it; reports syntax errors, or else every
    /// shape error found in definitions and the first one at the top level.
    pub fn check_source(&mut self, name: &str, text: &str) -> Vec<Diagnostic> {
        let (_, module) = match self.parse(name, text) {
            Ok(m) => m,
            Err(e) => return e,
        };
        lower::check_module(self, &module)
    }

    /// How many times a function has been lowered (specialised) in this session.
    pub fn lowerings(&self) -> usize {
        self.cache.lowerings
    }

    /// Every specialisation made so far, in no particular order.
    pub fn specializations(&self) -> Vec<std::rc::Rc<crate::cache::Entry>> {
        self.cache.map.values().flatten().cloned().collect()
    }

    /// Runs a program on the leaves of its parameters; the values of the top-level names it
    /// captures are added from the session. `None` if a captured name is gone.
    pub fn run_program(&self, p: &ad_ir::Program, mut leaves: Vec<Array>) -> Option<Vec<Array>> {
        for c in &p.captures {
            flatten(self.scopes.get(c.scope, &c.name)?, &mut leaves);
        }
        ad_eval::Compiled::new(p).run(leaves).ok()
    }

    /// Forgets a top-level name of the main scope (the REPL does this when a file is loaded
    /// again).
    pub fn remove_global(&mut self, name: &str) {
        self.scopes.remove(MAIN_SCOPE, name);
    }

    /// The value of a top-level name of the script (or the REPL), the prelude's included.
    pub fn global_value(&self, name: &str) -> Option<&LVal> {
        self.scopes.get(MAIN_SCOPE, name)
    }

    /// What goes before a printed program so that, read in the directory of the last
    /// script, its top-level names mean what they mean in `p`: `import` lines for the files
    /// of names the script does not see (a function of an imported file reads that file's
    /// names), or, when imports cannot do that, comments saying which file each name is
    /// from. Empty when the script sees every name `p` reads.
    pub fn imports_for(&self, p: &ad_ir::Program) -> String {
        let captures: Vec<(ScopeId, Name)> = p.captures.iter().map(|c| (c.scope, c.name.clone())).collect();
        match self.scopes.imports_for(&captures) {
            Ok(paths) => paths.iter().map(|p| format!("import \"{}\"\n", escape(p))).collect(),
            Err(names) => names
                .iter()
                .map(|(name, file)| {
                    format!("# `{name}` is the top-level name of `{file}`, not of this file\n")
                })
                .collect(),
        }
    }

    /// Every top-level name the script (or the REPL) sees, the prelude's included.
    pub fn top_level_names(&self) -> Vec<Name> {
        self.scopes.names(MAIN_SCOPE)
    }

    /// Draws figures on the output when it is a terminal (`None`: it is not, and plotting
    /// prints nothing).
    pub fn set_screen(&mut self, screen: Option<crate::plot::Screen>) {
        self.screen = screen;
    }

    /// Shows a progress bar on standard error for long top-level loops (set when standard
    /// error is a terminal).
    pub fn set_progress(&mut self, on: bool) {
        self.progress.enabled = on;
    }

    /// On a terminal, draws the figure that has series neither shown nor saved (the REPL
    /// does this after each entry, `ad run` at the end of the script).
    pub fn show_pending(&mut self) {
        if self.screen.is_some() && self.figures.pending() {
            crate::plot::show(self);
        }
    }

    pub fn write_out(&mut self, text: &str) {
        // A closed pipe (`ad run f.ad | head -1`) means nobody reads any more: stop the
        // script the way Ctrl-C does, and let the command line end quietly. A progress bar
        // on the screen steps aside while the text is written.
        let out = &mut self.out;
        let written = self.progress.suspend(|| out.write_all(text.as_bytes()).and_then(|()| out.flush()));
        if written.is_err() {
            self.output_closed = true;
            ad_eval::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// True once writing to the output failed (the reader went away).
    pub fn output_closed(&self) -> bool {
        self.output_closed
    }

    /// The values of a function call's leaves, captures included, for running `lowered`.
    pub(crate) fn capture_leaves(&self, lowered: &lower::Lowered, leaves: &mut Vec<Array>) -> bool {
        for c in &lowered.program.captures {
            match self.scopes.get(c.scope, &c.name) {
                Some(v) => flatten(v, leaves),
                None => return false,
            }
        }
        true
    }

    /// True when every top-level name the specialisation read still has its structure.
    pub(crate) fn deps_hold(&self, lowered: &lower::Lowered) -> bool {
        lowered
            .global_deps
            .iter()
            .all(|(scope, n, spec)| self.scopes.get(*scope, n).is_some_and(|v| Spec::of(v) == *spec))
    }
}

impl Host for Session {
    fn scope(&self, file: FileId) -> ScopeId {
        self.scopes.of_file(file)
    }

    fn global(&self, scope: ScopeId, name: &str) -> Option<LVal> {
        self.scopes.get(scope, name).cloned()
    }

    fn set_global(&mut self, scope: ScopeId, name: Name, value: LVal) {
        self.scopes.set(scope, name, value);
    }

    fn global_names(&self, scope: ScopeId) -> Vec<Name> {
        self.scopes.names(scope)
    }

    fn import(&mut self, path: &str, span: Span) -> lower::Result<Option<Module>> {
        let importer_name = self.sources.name(span.file).to_string();
        let (joined, canonical, display) = match self.scopes.resolve(span.file, &importer_name, path) {
            Ok(Resolved::Loaded) => return Ok(None),
            Ok(Resolved::Run { joined, canonical, display }) => (joined, canonical, display),
            Err((message, hint)) => {
                let d = Diagnostic::at(span, message);
                return Err(match hint {
                    Some(h) => d.with_hint(h),
                    None => d,
                });
            }
        };
        let text = match std::fs::read(&canonical) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                return Err(Diagnostic::at(span, format!("cannot import `{display}`: {}", io_reason(&e))))
            }
        };
        let file = self.sources.add(display.as_str(), text.as_str());
        self.scopes.start(span.file, file, joined, canonical, display.clone());
        let (module, errors) = ad_syntax::parser::parse(file, &text);
        let more = errors.len().saturating_sub(1);
        match errors.into_iter().next() {
            None => Ok(Some(module)),
            Some(first) => {
                // The file does not run; the statement reports its first syntax error.
                self.scopes.finish(false);
                let d = first.with_label(span, "in the file imported here");
                Err(if more > 0 {
                    d.with_note(format!(
                        "`{display}` has {} (`ad check {display}` lists them all)",
                        ad_ir::words::count(more, "more syntax error")
                    ))
                } else {
                    d
                })
            }
        }
    }

    fn import_done(&mut self, _span: Span, ok: bool) {
        self.scopes.finish(ok);
    }

    fn lowering(&mut self) -> &mut Vec<Rc<Def>> {
        &mut self.lowering
    }

    fn apply(&mut self, prim: &Prim, args: &[Array], span: Span) -> lower::Result<Array> {
        ad_eval::apply(prim, args).map_err(|m| Diagnostic::at(span, m))
    }

    fn call(&mut self, f: &LVal, args: Vec<LVal>, span: Span, arg_spans: &[Span]) -> lower::Result<LVal> {
        crate::call::call(self, f, args, span, arg_spans)
    }

    fn call_traced(
        &mut self,
        f: &LVal,
        args: Vec<LVal>,
        assigned: &[Name],
        span: Span,
        memo: &mut Option<Box<dyn std::any::Any>>,
    ) -> Option<lower::Result<LVal>> {
        crate::call::call_traced(self, f, args, assigned, span, memo)
    }

    fn effect(&mut self, effect: Effect, span: Span) -> lower::Result<LVal> {
        match effect {
            Effect::Print(vals) => {
                let parts: Vec<String> = vals
                    .iter()
                    .map(|v| match v {
                        LVal::Str(s) => s.to_string(),
                        v => v.display(self.precision),
                    })
                    .collect();
                let line = parts.join(" ") + "\n";
                self.write_out(&line);
                Ok(LVal::unit())
            }
            Effect::Seed(k) => {
                self.rng = Rng::new(k);
                Ok(LVal::unit())
            }
            Effect::Randn(s) => {
                Ok(LVal::array(Array::new(s, (0..s.size()).map(|_| self.rng.normal()).collect())))
            }
            Effect::Rand(s) => {
                Ok(LVal::array(Array::new(s, (0..s.size()).map(|_| self.rng.uniform()).collect())))
            }
            Effect::Now => Ok(LVal::array(Array::scalar(self.start.elapsed().as_secs_f64()))),
            Effect::ReadCsv(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Diagnostic::at(span, format!("cannot read `{path}`: {}", io_reason(&e))))?;
                let a = ad_eval::csv::parse(&text)
                    .map_err(|m| Diagnostic::at(span, format!("in `{path}`: {m}")))?;
                Ok(LVal::array(a))
            }
            Effect::WriteCsv(path, v) => {
                let mut leaves = Vec::new();
                flatten(&v, &mut leaves);
                let text = leaves.first().map(ad_eval::csv::format).unwrap_or_default();
                std::fs::write(&path, text)
                    .map_err(|e| Diagnostic::at(span, format!("cannot write `{path}`: {}", io_reason(&e))))?;
                Ok(LVal::unit())
            }
            Effect::Plot(call) => {
                crate::plot::perform(self, call).map_err(|m| Diagnostic::at(span, m))?;
                Ok(LVal::unit())
            }
            Effect::Load { path, name } => {
                crate::npy::load(&path, name.as_deref()).map_err(|m| Diagnostic::at(span, m))
            }
            Effect::Save(path, v) => {
                crate::npy::save(&path, &v).map_err(|m| Diagnostic::at(span, m))?;
                Ok(LVal::unit())
            }
        }
    }

    fn load_shapes(
        &mut self,
        path: &str,
        name: Option<&str>,
        span: Span,
    ) -> lower::Result<ad_ir::lower::io_effects::FileShapes> {
        crate::npy::shapes(path, name).map_err(|m| Diagnostic::at(span, m))
    }

    fn loop_started(&mut self, iterations: u64) {
        self.progress.started(iterations);
    }

    fn loop_step(&mut self, done: u64) {
        self.progress.step(done);
    }

    fn loop_ended(&mut self) {
        self.progress.ended();
    }

    fn derive(
        &mut self,
        p: &ad_ir::Program,
        req: &ad_ir::transform::Request,
    ) -> Result<ad_ir::Program, String> {
        ad_autodiff::derive(p, req)
    }

    fn interrupted(&self) -> bool {
        ad_eval::interrupted()
    }
}

/// A script's text, for the CLI and the REPL's `:load`. Invalid UTF-8 becomes U+FFFD, which
/// the lexer reports with its location.
pub fn read_source(path: &str) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => Err(format!("cannot read `{path}`: {}", io_reason(&e))),
    }
}

/// A string's text as a string literal writes it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\t', "\\t")
}

/// An I/O error's reason without Rust's "(os error 2)" suffix.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
