//! The REPL's state and the handling of one entry (a statement, an expression, or a
//! `:command`), shared by the terminal and the piped front ends.

use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_syntax::ast::{Pattern, StmtKind};
use ad_syntax::Diagnostic;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// What to do after an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Repl {
    pub session: Session,
    /// Everything the session prints (`print`, echoed values) goes through this buffer and
    /// is copied to the output after each entry.
    buf: SharedBuf,
    /// For each loaded file, the names it defined, removed when it is loaded again.
    loaded: HashMap<PathBuf, Vec<String>>,
    entries: usize,
    pub color: bool,
    /// The terminal figures are drawn on, and whether long loops show a progress bar
    /// (kept across `:reset`).
    screen: Option<ad_driver::plot::Screen>,
    progress: bool,
}

impl Default for Repl {
    fn default() -> Repl {
        Repl::new()
    }
}

impl Repl {
    pub fn new() -> Repl {
        let buf = SharedBuf::default();
        let session = Session::new(Box::new(buf.clone()));
        Repl { session, buf, loaded: HashMap::new(), entries: 0, color: false, screen: None, progress: false }
    }

    /// Draws figures on `screen` at `show()` and after each entry (`None`: the output is
    /// not a terminal), and shows progress bars for long loops when `progress` is set.
    pub fn set_terminal(&mut self, screen: Option<ad_driver::plot::Screen>, progress: bool) {
        (self.screen, self.progress) = (screen, progress);
        self.session.set_screen(screen);
        self.session.set_progress(progress);
    }

    /// Forgets every definition; settings stay.
    pub fn reset(&mut self) {
        let precision = self.session.precision;
        self.buf = SharedBuf::default();
        self.session = Session::new(Box::new(self.buf.clone()));
        self.session.precision = precision;
        self.session.set_screen(self.screen);
        self.session.set_progress(self.progress);
        self.loaded.clear();
    }

    /// A fresh source name for an entry, so that reports of different entries never mix.
    pub fn entry_name(&mut self) -> String {
        self.entries += 1;
        format!("<repl:{}>", self.entries)
    }

    pub fn report(&self, err: &mut dyn Write, errors: &[Diagnostic]) {
        let _ = write!(err, "{}", ad_syntax::render(&self.session.sources, errors, self.color));
    }

    /// Copies what the session printed to `out`.
    pub fn flush(&self, out: &mut dyn Write) {
        let text = self.buf.take();
        if !text.is_empty() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    /// Handles one complete entry.
    pub fn entry(&mut self, text: &str, out: &mut dyn Write, err: &mut dyn Write) -> Flow {
        ad_eval::INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        if let Some(cmd) = trimmed.strip_prefix(':') {
            let flow = crate::commands::run(self, cmd, out, err);
            self.flush(out);
            return flow;
        }
        let name = self.entry_name();
        match self.session.parse(&name, text) {
            Err(errors) => self.report(err, &errors),
            Ok((_, module)) => {
                let precision = self.session.precision;
                let mut echo = |s: &mut Session, v: ad_ir::lower::value::LVal| {
                    if !v.is_unit() {
                        s.write_out(&format!("{}\n", v.display(precision)));
                    }
                };
                let r = self.session.run_module(&module, &mut echo);
                // On a terminal, a figure plotted in this entry is drawn now.
                self.session.show_pending();
                self.flush(out);
                if let Err(e) = r {
                    self.report(err, &[e]);
                }
            }
        }
        Flow::Continue
    }

    /// Runs a file into the session. Names it defined when loaded before are forgotten
    /// first, so that loading an edited file replaces its definitions.
    pub fn load(&mut self, path: &str, out: &mut dyn Write, err: &mut dyn Write) -> bool {
        let text = match ad_driver::read_source(path) {
            Ok(t) => t,
            Err(m) => {
                let _ = writeln!(err, "Error: {m}");
                return false;
            }
        };
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        for name in self.loaded.remove(&key).unwrap_or_default() {
            self.session.remove_global(&name);
        }
        let module = match self.session.parse(path, &text) {
            Ok((_, m)) => m,
            Err(errors) => {
                self.report(err, &errors);
                return false;
            }
        };
        let mut names = Vec::new();
        for s in &module.stmts {
            match &s.kind {
                StmtKind::Def(d) => names.push(d.name.name.to_string()),
                StmtKind::Let { pat, .. } => pattern_names(pat, &mut names),
                _ => {}
            }
        }
        self.loaded.insert(key, names);
        let r = self.session.run_module(&module, &mut |_, _| {});
        self.session.show_pending();
        self.flush(out);
        match r {
            Ok(()) => true,
            Err(e) => {
                self.report(err, &[e]);
                false
            }
        }
    }
}

fn pattern_names(p: &Pattern, out: &mut Vec<String>) {
    match p {
        Pattern::Name(id) => out.push(id.name.to_string()),
        Pattern::Tuple(ps, _) => ps.iter().for_each(|p| pattern_names(p, out)),
    }
}
