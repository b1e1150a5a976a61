//! The `:commands`: a table with their help, resolution of unique prefixes, and the
//! implementations.

use crate::repl::{Flow, Repl};
use ad_driver::derive::{self, DeriveMode};
use ad_driver::Session;
use ad_ir::lower::value::{Func, LVal};
use ad_ir::lower::{self, Host};
use ad_ir::transform::{JacMode, Mode};
use ad_syntax::ast::{Expr, ExprKind, StmtKind};
use ad_syntax::{Diagnostic, Span};
use std::io::Write;

/// A REPL command: its help, and the function that carries it out. The table below is the
/// dispatch: a command exists exactly when it has an entry.
pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub summary: &'static str,
    pub help: &'static str,
    /// A use of the command, for the message when its argument is missing.
    pub example: &'static str,
    pub run: Handler,
}

/// Carries out a command given the text after its name.
pub type Handler = fn(&mut Repl, &'static Command, &str, &mut dyn Write, &mut dyn Write) -> Flow;

pub const COMMANDS: &[Command] = &[
    Command {
        name: "grad",
        args: "CALL",
        summary: "gradient of a call with respect to its first argument",
        help: "`:grad f(x, y)` prints ∂f/∂x at (x, y): the value of `grad(f)(x, y)`.\nf must return a scalar; x may be an array or a tuple of arrays.", example: ":grad f(2)", run: value_command },
    Command {
        name: "hessian",
        args: "CALL",
        summary: "Hessian with respect to the first argument",
        help: "`:hessian f(x)` prints ∇²f at x (forward over reverse): the value of `hessian(f)(x)`.", example: ":hessian f([1, 2])", run: value_command },
    Command {
        name: "jacobian",
        args: "CALL",
        summary: "Jacobian with respect to the first argument",
        help: "`:jacobian f(x)` prints the Jacobian of f at x, shaped [output, input]: the value\nof `jacobian(f)(x)`. `:explain` tells how it is computed.", example: ":jacobian f([1, 2])", run: value_command },
    Command {
        name: "jvp",
        args: "CALL",
        summary: "the forward-mode program derived for these argument shapes",
        help: "`:jvp f(x, y)` prints f_jvp(x, y, x_dot, y_dot) -> (out, out_dot), the program AD\nderives for arguments of these shapes (as `ad derive jvp`).", example: ":jvp f([1, 2])", run: program_command },
    Command {
        name: "vjp",
        args: "CALL",
        summary: "the reverse-mode program derived for these argument shapes",
        help: "`:vjp f(x, y)` prints f_vjp(x, y, out_bar) -> (out, x_bar, y_bar), the program AD\nderives for arguments of these shapes (as `ad derive vjp`).", example: ":vjp f([1, 2])", run: program_command },
    Command {
        name: "ir",
        args: "CALL",
        summary: "the program a function lowers to for these argument shapes",
        help: "`:ir f(x)` prints the IR of f specialised to the shapes of x, as `.ad` source\n(as `ad derive ir`).", example: ":ir f([1, 2])", run: program_command },
    Command {
        name: "explain",
        args: "CALL",
        summary: "how `jacobian` would compute the Jacobian of a call, and at what cost",
        help: "`:explain f(x)` compares forward mode (one JVP per input element) with reverse mode\n(one VJP per output element), in estimated multiply-adds, and says which `jacobian` uses.", example: ":explain f([1, 2])", run: program_command },
    Command {
        name: "type",
        args: "EXPR",
        summary: "the shape of an expression's value, or a function's signature",
        help: "`:type EXPR` shows the shape of EXPR's value (`f64[3]`, `(f64[2, 2], f64[])`) without\nrunning it, or the signature of a function.", example: ":type [1, 2] @ [[1], [2]]", run: type_command },
    Command {
        name: "load",
        args: "FILE",
        summary: "run a file into the session",
        help: "`:load FILE` runs FILE here. Loading the same file again replaces what it defined\n(names it no longer defines are forgotten). Files it imports run once per session\n(`:reset` forgets them).", example: ":load examples/mlp.ad", run: load_command },
    Command { name: "reset", args: "", summary: "forget everything defined in this session", help: "`:reset` starts over with only the prelude (settings are kept).", example: ":reset", run: reset_command },
    Command {
        name: "set",
        args: "NAME VALUE",
        summary: "`precision P` (digits printed, 1 to 17) or `memory SIZE` (per array and loop reversal)",
        help: "`:set precision P` prints numbers with up to P significant digits (default 6).\n`:set memory SIZE` sets the memory one array may use (e.g. 512MiB, 4GiB; default: the\nmachine's memory).", example: ":set precision 10", run: set_command },
    Command { name: "help", args: "[CMD]", summary: "this list, or the help of one command", help: "`:help` lists the commands; `:help grad` explains one.", example: ":help grad", run: help_command },
    Command { name: "quit", args: "", summary: "leave (Ctrl-D also does)", help: "`:quit` leaves the REPL; so does Ctrl-D on an empty line.", example: ":quit", run: quit_command },
];

/// The command a (possibly abbreviated) name means: exact names win, then unique prefixes.
pub fn resolve(word: &str) -> Result<&'static Command, String> {
    if let Some(c) = COMMANDS.iter().find(|c| c.name == word) {
        return Ok(c);
    }
    let matches: Vec<&Command> = COMMANDS.iter().filter(|c| c.name.starts_with(word)).collect();
    match matches.as_slice() {
        [c] => Ok(c),
        [] => {
            let names = COMMANDS.iter().map(|c| c.name);
            match lower::suggest(word, names) {
                Some(s) => Err(format!("unknown command `:{word}`; did you mean `:{s}`?")),
                None => Err(format!("unknown command `:{word}`; `:help` lists the commands")),
            }
        }
        many => Err(format!(
            "`:{word}` is ambiguous: {}",
            many.iter().map(|c| format!(":{}", c.name)).collect::<Vec<_>>().join(", ")
        )),
    }
}

pub fn help_text(cmd: Option<&Command>) -> String {
    match cmd {
        Some(c) => format!(":{} {}\n{}\n", c.name, c.args, c.help),
        None => {
            let mut s =
                String::from("Enter definitions, `let`s and expressions; an expression prints its value.\n");
            s.push_str("Commands (any unique prefix works, e.g. `:hes`):\n");
            for c in COMMANDS {
                let head = format!(":{} {}", c.name, c.args);
                s.push_str(&format!("  {head:<22} {}\n", c.summary));
            }
            s
        }
    }
}

pub fn run(repl: &mut Repl, text: &str, out: &mut dyn Write, err: &mut dyn Write) -> Flow {
    let (word, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let cmd = match resolve(word) {
        Ok(c) => c,
        Err(m) => {
            let _ = writeln!(err, "Error: {m}");
            return Flow::Continue;
        }
    };
    let needs_arg = !cmd.args.is_empty() && !cmd.args.starts_with('[');
    if needs_arg && rest.is_empty() {
        let _ = writeln!(err, "Error: `:{}` needs {}; for example `{}`", cmd.name, cmd.args, cmd.example);
        return Flow::Continue;
    }
    (cmd.run)(repl, cmd, rest, out, err)
}

fn quit_command(_: &mut Repl, _: &'static Command, _: &str, _: &mut dyn Write, _: &mut dyn Write) -> Flow {
    Flow::Quit
}

fn help_command(
    _: &mut Repl,
    _: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    let target = if rest.is_empty() { Ok(None) } else { resolve(rest.trim_start_matches(':')).map(Some) };
    match target {
        Ok(c) => {
            let _ = write!(out, "{}", help_text(c));
        }
        Err(m) => {
            let _ = writeln!(err, "Error: {m}");
        }
    }
    Flow::Continue
}

fn reset_command(
    repl: &mut Repl,
    _: &'static Command,
    _: &str,
    out: &mut dyn Write,
    _: &mut dyn Write,
) -> Flow {
    repl.reset();
    let _ = writeln!(out, "The session is empty again.");
    Flow::Continue
}

fn load_command(
    repl: &mut Repl,
    _: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    if repl.load(rest, out, err) {
        let _ = writeln!(out, "Loaded {rest}.");
    }
    Flow::Continue
}

fn type_command(
    repl: &mut Repl,
    _: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    if let Err(e) = type_of(repl, rest, out) {
        repl.report(err, &e);
    }
    Flow::Continue
}

fn set_command(
    repl: &mut Repl,
    _: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    set(repl, rest, out, err);
    Flow::Continue
}

/// `:grad`, `:hessian`, `:jacobian`: the value of the derivative at the call's arguments.
fn value_command(
    repl: &mut Repl,
    cmd: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    let mode = match cmd.name {
        "grad" => Mode::Grad { with_value: false },
        "hessian" => Mode::Hessian,
        _ => Mode::Jacobian(JacMode::Auto),
    };
    let r = eval_call(repl, rest).and_then(|c| {
        let s = &mut repl.session;
        let t = lower::transform(mode, c.f, vec![0], false);
        let v = s.call(&t, c.args, c.span, &c.arg_spans).map_err(|d| vec![d])?;
        let _ = writeln!(out, "{}", v.display(s.precision));
        Ok(())
    });
    if let Err(e) = r {
        repl.report(err, &e);
    }
    Flow::Continue
}

/// `:jvp`, `:vjp`, `:ir`, `:explain`: a program derived for the call's argument shapes, or
/// the Jacobian's plan.
fn program_command(
    repl: &mut Repl,
    cmd: &'static Command,
    rest: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Flow {
    let mode = match cmd.name {
        "ir" => DeriveMode::Ir,
        "jvp" => DeriveMode::Jvp,
        "vjp" => DeriveMode::Vjp,
        _ => DeriveMode::Jacobian,
    };
    let r = eval_call(repl, rest).and_then(|c| {
        let s = &mut repl.session;
        let d = derive::derive_call(s, &c.f, &c.args, c.span, &c.arg_spans, mode).map_err(|e| vec![e])?;
        let text = match (cmd.name, &d.plan) {
            ("explain", Some(plan)) => derive::explain(s, plan),
            _ => d.text(s).map_err(|e| vec![e])?,
        };
        let _ = write!(out, "{text}");
        Ok(())
    });
    if let Err(e) = r {
        repl.report(err, &e);
    }
    Flow::Continue
}

fn set(repl: &mut Repl, rest: &str, out: &mut dyn Write, err: &mut dyn Write) {
    let (setting, value) = match rest.trim().split_once(char::is_whitespace) {
        Some((s, v)) => (s, Some(v.trim())),
        None if rest.trim().is_empty() => ("", None),
        None => (rest.trim(), None),
    };
    let budget = || ad_ir::shape::human_bytes(ad_ir::shape::max_elements() as f64 * 8.0);
    match (setting, value) {
        ("precision", Some(v)) => match v.parse::<usize>() {
            Ok(p) if (1..=17).contains(&p) => {
                repl.session.precision = p;
                let _ = writeln!(out, "precision = {p}");
            }
            _ => {
                let _ = writeln!(err, "Error: precision is a number of significant digits from 1 to 17");
            }
        },
        ("precision", None) => {
            let _ = writeln!(out, "precision = {}", repl.session.precision);
        }
        ("memory", Some(v)) => match ad_driver::memory::parse_size(v) {
            Ok(bytes) => {
                ad_ir::shape::set_memory_budget(bytes);
                ad_ir::shape::set_tape_budget(bytes);
                let _ = writeln!(out, "memory = {}", budget());
            }
            Err(m) => {
                let _ = writeln!(err, "Error: {m}");
            }
        },
        ("memory", None) => {
            let _ = writeln!(out, "memory = {}", budget());
        }
        ("", _) => {
            let _ = writeln!(out, "precision = {}\nmemory = {}", repl.session.precision, budget());
        }
        (other, _) => {
            let _ = writeln!(err, "Error: unknown setting `{other}`; the settings are: precision, memory");
        }
    }
}

/// Parses the text after a command as one expression, in a source of its own.
fn parse_expr(repl: &mut Repl, text: &str) -> Result<Expr, Vec<Diagnostic>> {
    let name = repl.entry_name();
    let (_, module) = repl.session.parse(&name, text)?;
    match module.stmts.as_slice() {
        [s] => match &s.kind {
            StmtKind::Expr(e) => Ok(e.clone()),
            _ => Err(vec![Diagnostic::at(s.span, "expected an expression here, not a statement")]),
        },
        _ => Err(vec![Diagnostic::error("expected a single expression")]),
    }
}

fn type_of(repl: &mut Repl, text: &str, out: &mut dyn Write) -> Result<(), Vec<Diagnostic>> {
    let e = parse_expr(repl, text)?;
    let v = lower::check_expr(&mut repl.session, &e).map_err(|d| vec![d])?;
    let _ = writeln!(out, "{}", describe_type(&v));
    Ok(())
}

/// A value's type as the REPL shows it: `f64[3]`, `(f64[], f64[2, 2])`, `f(x: [n], y)`.
pub fn describe_type(v: &LVal) -> String {
    match v {
        LVal::Num(_) => "f64[]".into(),
        LVal::None => "none".into(),
        LVal::Arr(a) => format!("f64{}", a.shape()),
        LVal::Tuple(t) => {
            let parts: Vec<String> = t.iter().map(describe_type).collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        LVal::Str(_) => "string".into(),
        LVal::Func(f) => match &**f {
            Func::Def(d) => signature(d),
            Func::Overloads(ds) => ds.iter().map(|d| signature(d)).collect::<Vec<_>>().join(" | "),
            Func::Closure { lam, .. } => {
                let ps: Vec<&str> = lam.params.iter().map(|p| &*p.name).collect();
                format!("({}) => ...", ps.join(", "))
            }
            Func::Builtin(b) => format!("{b}: builtin"),
            Func::Transform { .. } => format!("{}: a derived function", f.name()),
            Func::Vmap { .. } => format!("{}: a batched function", f.name()),
            Func::Custom { .. } => format!("{}: a function with its own derivative rule", f.name()),
        },
    }
}

fn signature(d: &ad_syntax::ast::Def) -> String {
    use ad_syntax::ast::Dim;
    let params: Vec<String> = d
        .params
        .iter()
        .map(|p| match &p.annot {
            None => p.name.name.to_string(),
            Some(a) => {
                let dims: Vec<String> = a
                    .dims
                    .iter()
                    .map(|d| match d {
                        Dim::Known(n, _) => n.to_string(),
                        Dim::Named(id) => id.name.to_string(),
                    })
                    .collect();
                format!("{}: [{}]", p.name.name, dims.join(", "))
            }
        })
        .collect();
    format!("{}({})", d.name.name, params.join(", "))
}

/// The function and arguments of a `CALL` argument, evaluated.
struct Call {
    f: LVal,
    args: Vec<LVal>,
    span: Span,
    arg_spans: Vec<Span>,
}

fn eval_call(repl: &mut Repl, text: &str) -> Result<Call, Vec<Diagnostic>> {
    let e = parse_expr(repl, text)?;
    let ExprKind::Call(callee, args) = &e.kind else {
        return Err(vec![Diagnostic::at(e.span, "expected a call, like `f(x)`")
            .with_hint("these commands take a function applied to arguments, e.g. `:grad f(2)`")]);
    };
    let s: &mut Session = &mut repl.session;
    let f = lower::eval_expr(s, callee).map_err(|d| vec![d])?;
    if !matches!(f, LVal::Func(_)) {
        return Err(vec![Diagnostic::at(callee.span, format!("this is {}, not a function", f.describe()))]);
    }
    let mut vals = Vec::new();
    for a in args {
        vals.push(lower::eval_expr(s, a).map_err(|d| vec![d])?);
    }
    if vals.is_empty() {
        return Err(vec![Diagnostic::at(
            e.span,
            "the function needs an argument to differentiate with respect to",
        )]);
    }
    Ok(Call { f, args: vals, span: e.span, arg_spans: args.iter().map(|a| a.span).collect() })
}
