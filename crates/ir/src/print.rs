//! Prints a program as an `.ad` `def` that parses, shape-checks and computes the same values.
//!
//! Readability rules: user names are kept (a name used again later is suffixed `_2`, `_3`
//! only when the earlier value is still needed); unnamed values used once are inlined into
//! their single use as long as the expression stays short; other unnamed values become
//! `t1, t2, ...` in order of appearance. Parentheses follow the grammar's precedence table.

use crate::display::program_literal;
use crate::prim::{Axes, Binary, Prim, Sel, Unary};
use crate::program::{Atom, Program, Tree, Var};
use crate::shape::shape_arg;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

// Binding strength of printed forms, loosest first (grammar/ad.ebnf, operator table).
const P_OR: u8 = 1;
const P_AND: u8 = 2;
const P_CMP: u8 = 3;
const P_ADD: u8 = 4;
const P_MUL: u8 = 5;
const P_PREFIX: u8 = 6;
const P_POW: u8 = 7;
const P_POSTFIX: u8 = 8;
const P_ATOM: u8 = 9;

/// Inlining stops at this expression depth or text length, so lines stay readable.
const MAX_INLINE_DEPTH: usize = 4;
const MAX_INLINE_LEN: usize = 60;

/// Names a printed program must not bind, because its body calls them or they are keywords.
pub fn is_reserved(name: &str) -> bool {
    const KEYWORDS: &[&str] = &["def", "let", "for", "in", "while", "if", "else", "true", "false", "import"];
    KEYWORDS.contains(&name) || crate::lower::builtins::is_builtin_name(name)
}

#[derive(Clone)]
struct Rendered {
    text: String,
    prec: u8,
    depth: usize,
}

fn lit(x: f64) -> Rendered {
    let text = program_literal(x);
    let prec = if text.starts_with('-') { P_PREFIX } else { P_ATOM };
    Rendered { text, prec, depth: 0 }
}

fn paren(r: &Rendered, min: u8) -> String {
    if r.prec >= min {
        r.text.clone()
    } else {
        format!("({})", r.text)
    }
}

fn render_eqn(prim: &Prim, args: &[Rendered], shapes: &[crate::shape::Shape]) -> (String, u8) {
    let call = |name: &str, extra: &[String]| {
        let mut parts: Vec<String> = args.iter().map(|a| a.text.clone()).collect();
        parts.extend(extra.iter().cloned());
        (format!("{name}({})", parts.join(", ")), P_POSTFIX)
    };
    let infix = |op: &str, prec: u8, left_min: u8, right_min: u8| {
        (format!("{} {op} {}", paren(&args[0], left_min), paren(&args[1], right_min)), prec)
    };
    match prim {
        Prim::Unary(Unary::Neg) => (format!("-{}", paren(&args[0], P_POW)), P_PREFIX),
        Prim::Unary(Unary::Not) => (format!("!{}", paren(&args[0], P_POW)), P_PREFIX),
        Prim::Unary(u) => call(u.name(), &[]),
        Prim::Binary(b) => match b {
            Binary::Add => infix("+", P_ADD, P_ADD, P_ADD + 1),
            Binary::Sub => infix("-", P_ADD, P_ADD, P_ADD + 1),
            Binary::Mul => infix("*", P_MUL, P_MUL, P_MUL + 1),
            Binary::Div => infix("/", P_MUL, P_MUL, P_MUL + 1),
            Binary::Pow => infix("^", P_POW, P_POSTFIX, P_POW),
            Binary::Lt => infix("<", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::Le => infix("<=", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::Gt => infix(">", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::Ge => infix(">=", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::Eq => infix("==", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::Ne => infix("!=", P_CMP, P_CMP + 1, P_CMP + 1),
            Binary::And => infix("&&", P_AND, P_AND, P_AND + 1),
            Binary::Or => infix("||", P_OR, P_OR, P_OR + 1),
            Binary::Max
            | Binary::Min
            | Binary::Atan2
            | Binary::SafeMul
            | Binary::Hypot
            | Binary::Mod
            | Binary::Logaddexp => call(b.name(), &[]),
        },
        Prim::MatMul => infix("@", P_MUL, P_MUL, P_MUL + 1),
        Prim::Transpose => (format!("{}'", paren(&args[0], P_POSTFIX)), P_POSTFIX),
        Prim::Permute(perm) => {
            let axes: Vec<String> = perm.iter().map(|a| a.to_string()).collect();
            let tuple =
                if axes.len() == 1 { format!("({},)", axes[0]) } else { format!("({})", axes.join(", ")) };
            call("transpose", &[tuple])
        }
        Prim::Cumsum(axis, reverse) => {
            let mut extra = vec![axis.to_string()];
            if *reverse {
                extra.push("1".into());
            }
            call(prim.name(), &extra)
        }
        Prim::Sum(axes) | Prim::Amax(axes) | Prim::Prod(axes) | Prim::Flip(axes) => {
            let rank = shapes.first().map(|s| s.rank()).unwrap_or(0);
            let extra = match (axes.single(), axes.count()) {
                _ if *axes == Axes::all(rank) => vec![],
                (Some(a), _) => vec![a.to_string()],
                (None, 0) => vec!["()".to_string()],
                _ => vec![format!("({})", axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "))],
            };
            call(prim.name(), &extra)
        }
        Prim::Argmax(axis) => call(prim.name(), &axis.map(|a| vec![a.to_string()]).unwrap_or_default()),
        Prim::Reshape(s) | Prim::BroadcastTo(s) | Prim::SumTo(s) => call(prim.name(), &[shape_arg(*s)]),
        Prim::Index(sels) => {
            let dims = shapes.first().map(|s| s.dims().to_vec()).unwrap_or_default();
            let mut parts: Vec<String> = sels
                .iter()
                .enumerate()
                .map(|(k, s)| match *s {
                    Sel::At(i) => i.to_string(),
                    Sel::Range(a, b) => {
                        let lo = if a == 0 { String::new() } else { a.to_string() };
                        let hi = if dims.get(k) == Some(&b) { String::new() } else { b.to_string() };
                        format!("{lo}:{hi}")
                    }
                })
                .collect();
            // `x[i, :]` is `x[i]`; a selection needs at least one index.
            while parts.len() > 1 && parts.last().is_some_and(|p| p == ":") {
                parts.pop();
            }
            (format!("{}[{}]", paren(&args[0], P_POSTFIX), parts.join(", ")), P_POSTFIX)
        }
        Prim::Pad(w) => {
            let pairs: Vec<String> = w.iter().map(|(a, b)| format!("({a}, {b})")).collect();
            let spec = match pairs.as_slice() {
                [one] => one.clone(),
                // A scalar has no axes to pad: `pad(x, ())`.
                _ => format!("({})", pairs.join(", ")),
            };
            call("pad", &[spec])
        }
        Prim::Concat(axis) => call("concat", &[axis.to_string()]),
        Prim::Stack => {
            (format!("[{}]", args.iter().map(|a| a.text.clone()).collect::<Vec<_>>().join(", ")), P_ATOM)
        }
        Prim::StopGradient => call("stop_gradient", &[]),
        Prim::Check(message) => {
            let text: Vec<String> = args.iter().map(|a| unparen(&a.text).to_string()).collect();
            let quoted = format!("{message:?}");
            (format!("check({}, {}, {quoted}, {})", text[0], text[1], text[2]), P_POSTFIX)
        }
        Prim::Full(s, v) => match v.0 {
            0.0 => call("zeros", &[shape_arg(*s)]),
            1.0 => call("ones", &[shape_arg(*s)]),
            x => call("full", &[shape_arg(*s), program_literal(x)]),
        },
        Prim::Eye(n) => call("eye", &[n.to_string()]),
        Prim::Arange(n) => call("arange", &[n.to_string()]),
        Prim::Linspace(a, b, n) => {
            call("linspace", &[program_literal(a.0), program_literal(b.0), n.to_string()])
        }
        Prim::OneHot(k) => call("one_hot", &[k.to_string()]),
        Prim::Const(c) => (const_literal(&c.0), P_ATOM),
        Prim::Where => call("where", &[]),
        Prim::Solve | Prim::SafeSolve | Prim::SafeMatMul => call(prim.name(), &[]),
        Prim::Cholesky | Prim::LogAbsDet | Prim::SignDet | Prim::Decomp(_) => call(prim.name(), &[]),
        Prim::SolveTriangular(lower) => call(prim.name(), &[if *lower { "1" } else { "0" }.to_string()]),
        Prim::Conv2d(c) => call(prim.name(), &conv_args(c)),
        Prim::Conv2dTransposeInput(c, s) | Prim::Conv2dTransposeKernel(c, s) => {
            let mut extra = vec![shape_arg(*s)];
            extra.extend(conv_args(c));
            call(prim.name(), &extra)
        }
        Prim::MaxPool2d(p) | Prim::MaxPool2dPick(p) | Prim::MaxPool2dScatter(p) | Prim::AvgPool2d(p) => {
            call(prim.name(), &[p.size.to_string(), p.stride.to_string()])
        }
        Prim::AvgPool2dTranspose(p, s) => {
            call("avg_pool2d_transpose", &[shape_arg(*s), p.size.to_string(), p.stride.to_string()])
        }
        Prim::DynIndex(sel) => {
            let pos = dyn_positions(sel, &args[1..], shapes[0]);
            (format!("{}[{pos}]", paren(&args[0], P_POSTFIX)), P_POSTFIX)
        }
        // Statements, printed by the block printer.
        Prim::DynUpdate(_)
        | Prim::Loop(_)
        | Prim::ReverseLoop(_)
        | Prim::Cond(_)
        | Prim::Custom(_)
        | Prim::CustomLin(_) => (String::new(), P_ATOM),
    }
}

/// The positions of a `dyn_index` or `dyn_update` into an array of shape `x` as a script
/// writes them: `i` for one position, `i:i + k` for a window at a computed start (the
/// lowering finds the start again in the end), `a:b` or `:` for a window at a known one.
fn dyn_positions(sel: &crate::prim::DynSel, pos: &[Rendered], x: crate::shape::Shape) -> String {
    let parts: Vec<String> = sel
        .0
        .iter()
        .zip(pos)
        .enumerate()
        .map(|(axis, (w, p))| {
            // A number, not a name (a name may read as one: `inf`).
            let t = p.text.strip_prefix('-').unwrap_or(&p.text);
            let number =
                t.starts_with(|c: char| c.is_ascii_digit()).then(|| p.text.parse::<f64>().ok()).flatten();
            match (w, number) {
                (None, _) => p.text.clone(),
                (Some(k), Some(a)) if a == 0.0 && *k == x.dim(axis) => ":".to_string(),
                (Some(k), Some(a)) => format!("{}:{}", p.text, crate::display::fmt_num(a + *k as f64, 17)),
                (Some(k), None) => format!("{}:{} + {k}", p.text, paren(p, P_ADD)),
            }
        })
        .collect();
    parts.join(", ")
}

/// A convolution's static arguments as a script writes them: `1, "same"`.
fn conv_args(c: &crate::prim::Conv) -> Vec<String> {
    let mut args = vec![c.stride.to_string(), format!("{:?}", c.padding.name())];
    // One group is the default, and the common case: it is not printed.
    if c.groups != 1 {
        args.push(c.groups.to_string());
    }
    args
}

fn const_literal(a: &crate::array::Array) -> String {
    fn nested(d: &[f64], dims: &[usize]) -> String {
        match dims {
            [] => program_literal(d[0]),
            [_] => format!("[{}]", d.iter().map(|x| program_literal(*x)).collect::<Vec<_>>().join(", ")),
            [m, rest @ ..] => {
                let stride: usize = rest.iter().product();
                let items: Vec<String> =
                    (0..*m).map(|i| nested(&d[i * stride..(i + 1) * stride], rest)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
    let shape = a.shape();
    let dims = shape.dims();
    // An empty array has no literal: `[]` would be a vector of length 0 whatever its shape.
    if shape.size() == 0 && dims.len() != 1 {
        return format!("zeros({})", shape_arg(shape));
    }
    nested(a.data(), dims)
}

fn sanitize(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'v');
    }
    s
}

/// Names in use while printing one `def`, shared by the blocks of its loops so that a name
/// bound inside a loop never hides one the rest of the program reads.
struct Namer {
    /// Parameter and capture names: never rebound.
    taken: HashSet<String>,
    user_names: HashSet<String>,
    /// The next suffix to try for each base name, so that many values of one name (a long
    /// unrolled loop) do not each search from `_2` upwards.
    next_suffix: HashMap<String, usize>,
    temp: usize,
    /// The printed program's name, and the `def`s of the loop reversals printed so far
    /// (`reverse_loop` calls them), which come before it.
    prefix: String,
    helpers: Vec<String>,
    reversals: usize,
}

/// Prints `p` as a `def`. Fails only for programs whose parameters are function values,
/// which have no `.ad` parameter syntax.
pub fn print_program(p: &Program) -> Result<String, String> {
    if p.out_tree.holds_function() {
        return Err(format!("`{}` returns a function, which cannot be printed as a program", p.name));
    }
    let mut namer = Namer {
        taken: HashSet::new(),
        user_names: HashSet::new(),
        next_suffix: HashMap::new(),
        temp: 0,
        prefix: sanitize(&p.name),
        helpers: Vec::new(),
        reversals: 0,
    };
    collect_user_names(p, &mut namer.user_names);
    for c in &p.captures {
        namer.taken.insert(c.name.to_string());
    }
    // A parameter keeps its name for the whole body, so that reading the program never
    // meets it rebound (a later `let v = ...` in an HVP reads as the direction `v`).
    for d in &p.params {
        namer.taken.insert(sanitize(&d.name));
    }
    let n = p.vars.len();
    let mut names: Vec<Option<String>> = vec![None; n];
    let mut holder: HashMap<String, Var> = HashMap::new();
    let mut header = Vec::new();
    let mut prologue = Vec::new();
    let mut tuple_leaves: Vec<Var> = Vec::new();
    let mut input = p.inputs.iter();
    let mut pending: Vec<(Tree, Vec<Var>, String)> = Vec::new();
    // Parameters get distinct names (the JVP of a function with a parameter `x_dot` has
    // two parameters named so): a later one gets a suffix.
    let mut param_names: HashSet<String> = HashSet::new();
    let mut distinct = |name: &str| -> String {
        let base = sanitize(name);
        let mut cand = base.clone();
        let mut k = 2;
        while !param_names.insert(cand.clone()) {
            cand = format!("{base}_{k}");
            k += 1;
        }
        cand
    };
    for param in &p.params {
        match &param.tree {
            Tree::Leaf => {
                let v = *input.next().ok_or("inputs do not match parameters")?;
                let pname = distinct(&param.name);
                holder.insert(pname.clone(), v);
                names[v.index()] = Some(pname.clone());
                header.push(format!("{pname}: {}", p.var_shape(v)));
            }
            Tree::Tuple(_) => {
                let pname = distinct(&param.name);
                header.push(pname.clone());
                let leaves: Vec<Var> = input.by_ref().take(param.tree.leaves()).copied().collect();
                tuple_leaves.extend(&leaves);
                pending.push((param.tree.clone(), leaves, pname));
            }
            Tree::Opaque(_) => {
                return Err(format!(
                    "`{}` takes a function as parameter `{}`, which cannot be printed",
                    p.name, param.name
                ))
            }
        }
    }
    namer.taken.extend(param_names);
    for c in &p.captures {
        let leaves: Vec<Var> = input.by_ref().take(c.tree.leaves()).copied().collect();
        match &c.tree {
            Tree::Leaf => {
                if let Some(v) = leaves.first() {
                    names[v.index()] = Some(c.name.to_string());
                }
            }
            Tree::Tuple(_) => {
                tuple_leaves.extend(&leaves);
                pending.push((c.tree.clone(), leaves, c.name.to_string()));
            }
            Tree::Opaque(_) => {
                return Err(format!("`{}` reads the function `{}` as a value", p.name, c.name))
            }
        }
    }
    let mut blk = Block::new(p, names, holder);
    for v in &tuple_leaves {
        blk.choose(&mut namer, *v, 0);
    }
    for (tree, leaves, name) in pending {
        let mut it = leaves.iter();
        let pat = pattern(&tree, &mut it, &blk.names);
        prologue.push(format!("let {pat} = {name}"));
    }
    let (lines, outs) = blk.print(&mut namer, &HashSet::new());
    let mut body = prologue;
    body.extend(lines);
    let mut outs = outs.into_iter().map(|r| r.text);
    let result = render_tree(&p.out_tree, &mut outs);

    let mut s: String = namer.helpers.concat();
    let _ = write!(s, "def {}({})", sanitize(&p.name), header.join(", "));
    if body.is_empty() {
        let _ = writeln!(s, " = {result}");
    } else {
        s.push_str(" {\n");
        for line in body {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(s, "  {result}\n}}");
    }
    Ok(s)
}

fn collect_user_names(p: &Program, out: &mut HashSet<String>) {
    out.extend(p.vars.iter().filter_map(|v| v.name.as_deref().map(sanitize)));
    for e in &p.eqns {
        match &e.prim {
            Prim::Loop(op) => {
                collect_user_names(&op.body, out);
                if let Some(c) = &op.cond {
                    collect_user_names(c, out);
                }
            }
            Prim::Cond(op) => {
                for b in op.branches() {
                    collect_user_names(b, out);
                }
            }
            _ => {}
        }
    }
}

/// One block of a printed `def`: its body, or the body of a loop in it.
struct Block<'p> {
    p: &'p Program,
    /// Final names of values bound in this block (inputs' names are given).
    names: Vec<Option<String>>,
    /// Inputs of a loop body stand for outer values: their text.
    given: Vec<Option<Rendered>>,
    holder: HashMap<String, Var>,
    inline: Vec<bool>,
    last_use: Vec<usize>,
    /// Render every value inline where possible (a `while` loop's condition, which is one
    /// expression).
    inline_all: bool,
}

impl<'p> Block<'p> {
    fn new(p: &'p Program, names: Vec<Option<String>>, holder: HashMap<String, Var>) -> Block<'p> {
        let n = p.vars.len();
        Block {
            p,
            names,
            given: vec![None; n],
            holder,
            inline: vec![false; n],
            last_use: vec![0; n],
            inline_all: false,
        }
    }

    fn choose(&mut self, namer: &mut Namer, v: Var, at: usize) {
        self.choose_avoiding(namer, v, at, &HashSet::new())
    }

    /// Gives `v` a name free at equation `at`: not a parameter, not reserved, not one of the
    /// enclosing blocks' names (`outer`), and not held by a value still needed.
    fn choose_avoiding(&mut self, namer: &mut Namer, v: Var, at: usize, outer: &HashSet<String>) {
        let base = self.p.name_of(v).map(sanitize);
        let last_use = &self.last_use;
        let free = |cand: &str, holder: &HashMap<String, Var>| {
            !is_reserved(cand)
                && !namer.taken.contains(cand)
                && !outer.contains(cand)
                && holder.get(cand).is_none_or(|w| last_use[w.index()] <= at && *w != v)
        };
        let name = match base {
            Some(b) => {
                let mut cand = b.clone();
                if !free(&cand, &self.holder) {
                    let k = namer.next_suffix.entry(b.clone()).or_insert(2);
                    loop {
                        cand = format!("{b}_{k}");
                        *k += 1;
                        if free(&cand, &self.holder) {
                            break;
                        }
                    }
                }
                cand
            }
            None => loop {
                namer.temp += 1;
                let cand = format!("t{}", namer.temp);
                if !namer.user_names.contains(&cand) && free(&cand, &self.holder) {
                    break cand;
                }
            },
        };
        self.holder.insert(name.clone(), v);
        self.names[v.index()] = Some(name);
    }

    /// The block's lines and its outputs' text. `outer` holds the enclosing blocks' names.
    fn print(mut self, namer: &mut Namer, outer: &HashSet<String>) -> (Vec<String>, Vec<Rendered>) {
        let p = self.p;
        let n = p.vars.len();
        let mut def_of: Vec<Option<usize>> = vec![None; n];
        for (i, e) in p.eqns.iter().enumerate() {
            for o in e.outs() {
                def_of[o.index()] = Some(i);
            }
        }
        let mut uses = vec![0usize; n];
        for e in &p.eqns {
            // Operands of loops and updates are named: a loop reads them on every iteration.
            // (A reversal's operands are read once, by the call, and so are a loop's bounds.)
            // The operands of an `if`'s branches are named too, so that a branch does not
            // repeat an expression; its condition may be written in place.
            for (k, a) in e.args.iter().enumerate() {
                let weight = match e.prim {
                    Prim::Loop(_) if k >= 2 => 2,
                    Prim::Cond(_) if k >= 1 => 2,
                    _ => 1,
                };
                if let Atom::Var(v) = a {
                    uses[v.index()] += weight;
                }
            }
        }
        for a in &p.outputs {
            if let Atom::Var(v) = a {
                uses[v.index()] += 1;
            }
        }
        // A loop body's new carried value used nowhere else is written into its assignment.
        let body_output =
            |v: Var| !outer.is_empty() && p.outputs.contains(&Atom::Var(v)) && uses[v.index()] == 1;

        // Pass 1: decide which values are inlined, rendering with provisional names.
        let provisional = |v: Var| p.name_of(v).map(sanitize).unwrap_or_else(|| "t00".to_string());
        let mut pre: Vec<Option<Rendered>> = vec![None; n];
        for e in &p.eqns {
            if !matches!(
                e.prim,
                Prim::Loop(_)
                    | Prim::ReverseLoop(_)
                    | Prim::Cond(_)
                    | Prim::Custom(_)
                    | Prim::CustomLin(_)
                    | Prim::DynUpdate(_)
            ) {
                let args: Vec<Rendered> = e
                    .args
                    .iter()
                    .map(|a| match a {
                        Atom::Lit(x) => lit(*x),
                        Atom::Var(v) if self.inline[v.index()] => {
                            pre[v.index()].clone().unwrap_or_else(|| lit(0.0))
                        }
                        Atom::Var(v) => Rendered { text: provisional(*v), prec: P_ATOM, depth: 0 },
                    })
                    .collect();
                let shapes: Vec<_> = e.args.iter().map(|a| p.shape(*a)).collect();
                let (text, prec) = render_eqn(&e.prim, &args, &shapes);
                let depth = 1 + args.iter().map(|a| a.depth).max().unwrap_or(0);
                let o = e.out.index();
                // A number is written where it is used, however often (a program read back
                // from the text has literals there).
                let number = p.vars[o].name.is_none() && text.parse::<f64>().is_ok();
                self.inline[o] = self.inline_all
                    || number
                    || (p.vars[o].name.is_none()
                        && uses[o] == 1
                        && depth <= MAX_INLINE_DEPTH
                        && text.len() <= MAX_INLINE_LEN)
                    || body_output(e.out);
                pre[o] = Some(Rendered { text, prec, depth });
            }
        }

        // Pass 2: where is each value last needed? A value referenced inside an inlined
        // expression is needed where that expression is finally printed.
        let end = p.eqns.len();
        fn mark(
            p: &Program,
            v: Var,
            at: usize,
            inline: &[bool],
            def_of: &[Option<usize>],
            last_use: &mut [usize],
        ) {
            last_use[v.index()] = last_use[v.index()].max(at);
            if inline[v.index()] {
                if let Some(i) = def_of[v.index()] {
                    for a in &p.eqns[i].args {
                        if let Atom::Var(w) = a {
                            mark(p, *w, at, inline, def_of, last_use);
                        }
                    }
                }
            }
        }
        for (i, e) in p.eqns.iter().enumerate() {
            if self.inline[e.out.index()] {
                continue;
            }
            for (k, a) in e.args.iter().enumerate() {
                if let Atom::Var(w) = a {
                    // A loop's constants, and an update's value and positions, are read after
                    // its results are bound: their names stay reserved past it.
                    let after = match &e.prim {
                        Prim::Loop(op) => k >= 2 + op.carries,
                        Prim::ReverseLoop(_) => k >= 2,
                        Prim::DynUpdate(_) => k >= 1,
                        _ => false,
                    };
                    mark(p, *w, i + after as usize, &self.inline, &def_of, &mut self.last_use);
                }
            }
        }
        for a in &p.outputs {
            if let Atom::Var(w) = a {
                mark(p, *w, end, &self.inline, &def_of, &mut self.last_use);
            }
        }

        // Pass 3: names.
        for (i, e) in p.eqns.iter().enumerate() {
            if !self.inline[e.out.index()] {
                for o in e.outs() {
                    self.choose_avoiding(namer, o, i, outer);
                }
            }
        }

        // Pass 4: render with the final names.
        let mut lines: Vec<String> = Vec::new();
        let mut fin: Vec<Option<Rendered>> = vec![None; n];
        for e in &p.eqns {
            let args: Vec<Rendered> = e.args.iter().map(|a| self.atom(a, &fin)).collect();
            let o = e.out.index();
            match &e.prim {
                Prim::Loop(op) => {
                    let mut inner = outer.clone();
                    inner.extend(self.names.iter().flatten().cloned());
                    inner.extend(self.holder.keys().cloned());
                    lines.extend(self.print_loop(namer, e, op, &args, inner));
                }
                Prim::ReverseLoop(op) => {
                    let mut inner = outer.clone();
                    inner.extend(self.names.iter().flatten().cloned());
                    inner.extend(self.holder.keys().cloned());
                    lines.extend(self.print_reverse(namer, e, op, &args, inner));
                }
                Prim::Custom(op) | Prim::CustomLin(op) => lines.push(self.print_custom(namer, e, op, &args)),
                Prim::Cond(op) => {
                    let mut inner = outer.clone();
                    inner.extend(self.names.iter().flatten().cloned());
                    inner.extend(self.holder.keys().cloned());
                    lines.extend(self.print_cond(namer, e, op, &args, &inner));
                }
                Prim::DynUpdate(sel) => {
                    let name = self.names[o].clone().unwrap_or_else(|| "_".into());
                    if args[0].text != name {
                        lines.push(format!("let {name} = {}", args[0].text));
                    }
                    let pos = dyn_positions(sel, &args[2..], p.shape(e.args[0]));
                    lines.push(format!("{name}[{pos}] = {}", args[1].text));
                }
                _ => {
                    let shapes: Vec<_> = e.args.iter().map(|a| p.shape(*a)).collect();
                    let (text, prec) = render_eqn(&e.prim, &args, &shapes);
                    if self.inline[o] {
                        fin[o] = Some(Rendered { text, prec, depth: 0 });
                    } else {
                        lines.push(format!("let {} = {text}", self.names[o].as_deref().unwrap_or("_")));
                    }
                }
            }
        }
        let outs = p.outputs.iter().map(|a| self.atom(a, &fin)).collect();
        (lines, outs)
    }

    fn atom(&self, a: &Atom, fin: &[Option<Rendered>]) -> Rendered {
        match a {
            Atom::Lit(x) => lit(*x),
            Atom::Var(v) => match (&fin[v.index()], &self.given[v.index()]) {
                (Some(r), _) if self.inline[v.index()] => r.clone(),
                (_, Some(g)) => g.clone(),
                _ => Rendered {
                    text: self.names[v.index()].clone().unwrap_or_else(|| format!("v{}", v.0)),
                    prec: P_ATOM,
                    depth: 0,
                },
            },
        }
    }

    /// `reverse_loop`: the results bound by name, from a call whose blocks are the primal
    /// loop (its condition and body) and the backward step.
    fn print_reverse(
        &self,
        namer: &mut Namer,
        e: &crate::program::Eqn,
        op: &crate::region::ReverseOp,
        args: &[Rendered],
        outer: HashSet<String>,
    ) -> Vec<String> {
        let _ = outer;
        let results: Vec<String> =
            e.outs().map(|o| self.names[o.index()].clone().unwrap_or_else(|| "_".into())).collect();
        let primal = &op.primal;
        let (c, k) = (primal.carries, primal.consts());
        // The loop's programs print as `def`s before this one, named after it.
        namer.reversals += 1;
        let base = format!("{}_loop{}", namer.prefix, namer.reversals);
        let mut helper = |p: &Program, suffix: &str| -> String {
            let name = format!("{base}_{suffix}");
            let mut q = p.clone();
            q.name = name.clone();
            // Parameters are named after the values they stand for, made distinct.
            let mut seen = HashSet::new();
            for d in q.params.iter_mut() {
                let mut cand = sanitize(&d.name);
                let mut n = 2;
                while !seen.insert(cand.clone()) || is_reserved(&cand) {
                    cand = format!("{}_{n}", sanitize(&d.name));
                    n += 1;
                }
                d.name = cand.into();
            }
            match print_program(&q) {
                Ok(text) => namer.helpers.push(text),
                Err(m) => namer.helpers.push(format!("# {name} cannot be printed: {m}\n")),
            }
            name
        };
        let cond = primal.cond.as_ref().map(|c| helper(c, "cond")).unwrap_or_else(|| "none".into());
        let body = helper(&primal.body, "body");
        let back = helper(&op.back, "back");
        let tuple = |xs: &[Rendered]| match xs {
            [x] => format!("({},)", x.text),
            _ => format!("({})", xs.iter().map(|x| x.text.clone()).collect::<Vec<_>>().join(", ")),
        };
        let pattern = match results.as_slice() {
            [r] => format!("({r},)"),
            _ => format!("({})", results.join(", ")),
        };
        // Why the loop is reversed here rather than from a tape in the program.
        let why = if primal.is_while() {
            "a `while` loop (its trip count is known when it ends)"
        } else if args[0].text.parse::<f64>().is_ok() && args[1].text.parse::<f64>().is_ok() {
            "a loop whose tape would pass the memory budget"
        } else {
            "a loop whose bounds are computed when it runs"
        };
        vec![
            format!("# Reverse mode through {why}: the loop runs"),
            "# again keeping its carried values (or checkpoints of them, past the memory budget),"
                .to_string(),
            "# then the backward step runs from its last iteration to its first.".to_string(),
            format!(
                "let {pattern} = reverse_loop({}, {}, {cond}, {body}, {back}, {}, {}, {}, {})",
                args[0].text,
                args[1].text,
                tuple(&args[2..2 + c]),
                tuple(&args[2 + c..2 + c + k]),
                tuple(&args[2 + c + k..]),
                tuple(&op.wrt.iter().map(|j| lit(*j as f64)).collect::<Vec<_>>())
            ),
        ]
    }

    /// `let r = custom_jvp(f, rule)(args..)` or `custom_vjp(f, fwd, bwd)(args..)`, with the
    /// function and its rules printed as `def`s before this one. The values the call reads
    /// from outside its arguments become arguments too: a `custom_jvp` rule ignores their
    /// tangents; a `custom_vjp`'s `fwd` passes them to `bwd` as residuals, and `bwd` gives
    /// them zero cotangents. (A `custom_vjp` derivative, which derived programs never hold,
    /// prints as a call of its name.)
    fn print_custom(
        &self,
        namer: &mut Namer,
        e: &crate::program::Eqn,
        op: &crate::region::CustomOp,
        args: &[Rendered],
    ) -> String {
        use crate::program::{ParamDecl, VarInfo};
        let results: Vec<String> =
            e.outs().map(|o| self.names[o.index()].clone().unwrap_or_else(|| "_".into())).collect();
        let pattern = match results.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        };
        let call_args: Vec<String> = args.iter().map(|a| unparen(&a.text).to_string()).collect();
        if let Prim::CustomLin(_) = &e.prim {
            return format!("let {pattern} = {}({})", e.prim.name(), call_args.join(", "));
        }
        namer.reversals += 1;
        let base = format!("{}_custom{}", namer.prefix, namer.reversals);
        let (n, m) = (op.args, op.primal.inputs.len());
        let n_out = op.primal.outputs.len();
        let out_tree = crate::region::flat_tree(n_out);
        let leaves = |k: usize| Tree::Tuple(vec![Tree::Leaf; k]);
        let named = |p: &Program, label: &str| {
            let mut q = p.clone();
            q.name = format!("{base}_{label}");
            q
        };
        let mut f = named(&op.primal, "f");
        f.out_tree = out_tree.clone();
        for (k, d) in f.params.iter_mut().enumerate() {
            d.name = format!("x{k}").into();
        }
        let mut helpers = vec![f];
        match &op.rule {
            crate::region::CustomRule::Jvp(rule) => {
                // The rule takes `(primals, tangents)`: the constants' tangents are unused
                // inputs.
                let mut r = named(rule, "rule");
                let mut inputs: Vec<Var> = r.inputs[..n].to_vec();
                inputs.extend_from_slice(&r.inputs[2 * n..]);
                inputs.extend_from_slice(&r.inputs[n..2 * n]);
                for k in 2 * n..r.inputs.len() {
                    let shape = r.var_shape(r.inputs[k]);
                    inputs.push(Var(r.vars.len() as u32));
                    r.vars.push(VarInfo { shape, name: None });
                }
                r.inputs = inputs;
                r.params = vec![
                    ParamDecl { name: "primals".into(), tree: leaves(m) },
                    ParamDecl { name: "tangents".into(), tree: leaves(m) },
                ];
                r.out_tree = Tree::Tuple(vec![out_tree.clone(), out_tree]);
                helpers.push(r);
            }
            crate::region::CustomRule::Vjp { fwd, bwd, .. } => {
                let res = op.residuals() + m - n;
                let mut fw = named(fwd, "fwd");
                for (k, d) in fw.params.iter_mut().enumerate() {
                    d.name = format!("x{k}").into();
                }
                let consts: Vec<Atom> = fw.inputs[n..].iter().map(|v| Atom::Var(*v)).collect();
                fw.outputs.extend(consts);
                fw.out_tree = Tree::Tuple(vec![out_tree.clone(), leaves(res)]);
                let mut bw = named(bwd, "bwd");
                let r = op.residuals();
                let mut inputs: Vec<Var> = bw.inputs[..r].to_vec();
                inputs.extend_from_slice(&bw.inputs[r + n_out..]);
                inputs.extend_from_slice(&bw.inputs[r..r + n_out]);
                for v in &bw.inputs[r + n_out..] {
                    let shape = bw.var_shape(*v);
                    let z = Var(bw.vars.len() as u32);
                    bw.vars.push(VarInfo { shape, name: None });
                    bw.eqns.push(crate::program::Eqn {
                        out: z,
                        prim: Prim::Full(shape, crate::prim::F64(0.0)),
                        args: Default::default(),
                        span: bw.span,
                        extra: Box::default(),
                    });
                    bw.outputs.push(Atom::Var(z));
                }
                bw.inputs = inputs;
                bw.params = vec![
                    ParamDecl { name: "res".into(), tree: leaves(res) },
                    ParamDecl { name: "ct".into(), tree: out_tree },
                ];
                bw.out_tree = leaves(m);
                helpers.push(fw);
                helpers.push(bw);
            }
        }
        for p in &helpers {
            match print_program(p) {
                Ok(text) => namer.helpers.push(text),
                Err(msg) => namer.helpers.push(format!("# {} cannot be printed: {msg}\n", p.name)),
            }
        }
        let names: Vec<&str> = helpers.iter().map(|p| p.name.as_str()).collect();
        format!("let {pattern} = {}({})({})", op.keyword(), names.join(", "), call_args.join(", "))
    }

    /// `let (a, b) = if c { .. } else { .. }`: each branch a block ending in its value, its
    /// inputs written as the operands they stand for.
    fn print_cond(
        &self,
        namer: &mut Namer,
        e: &crate::program::Eqn,
        op: &crate::region::CondOp,
        args: &[Rendered],
        outer: &HashSet<String>,
    ) -> Vec<String> {
        let results: Vec<String> =
            e.outs().map(|o| self.names[o.index()].clone().unwrap_or_else(|| "_".into())).collect();
        let mut branch = |p: &Program| -> (Vec<String>, String) {
            let mut blk = Block::new(p, vec![None; p.vars.len()], HashMap::new());
            for (k, v) in p.inputs.iter().enumerate() {
                blk.given[v.index()] = Some(args[1 + k].clone());
            }
            let (lines, outs) = blk.print(namer, outer);
            let value = match outs.as_slice() {
                [one] => unparen(&one.text).to_string(),
                many => format!("({})", many.iter().map(|r| r.text.clone()).collect::<Vec<_>>().join(", ")),
            };
            (lines, value)
        };
        let (then_lines, then_value) = branch(&op.then);
        let (else_lines, else_value) = branch(&op.els);
        let pattern = match results.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        };
        let c = unparen(&args[0].text);
        if then_lines.is_empty() && else_lines.is_empty() {
            let line = format!("let {pattern} = if {c} {{ {then_value} }} else {{ {else_value} }}");
            if line.len() <= 96 {
                return vec![line];
            }
        }
        let mut lines = vec![format!("let {pattern} = if {c} {{")];
        lines.extend(then_lines.into_iter().chain([then_value]).map(|l| format!("  {l}")));
        lines.push("} else {".into());
        lines.extend(else_lines.into_iter().chain([else_value]).map(|l| format!("  {l}")));
        lines.push("}".into());
        lines
    }

    /// `let c = init` for each carried value not already named so, then the `for` with its
    /// body, which ends by assigning the carried values their new values.
    fn print_loop(
        &self,
        namer: &mut Namer,
        e: &crate::program::Eqn,
        op: &crate::region::LoopOp,
        args: &[Rendered],
        outer: HashSet<String>,
    ) -> Vec<String> {
        let carried: Vec<String> =
            e.outs().map(|o| self.names[o.index()].clone().unwrap_or_else(|| "_".into())).collect();
        print_loop_named(namer, carried, op, args, outer).0
    }
}

/// A loop whose carried values are named `carried`: `let c = init` for each not already
/// named so, then the `for` or `while` with its body, which ends by assigning the carried
/// values their new values; and the name of the loop's counter.
fn print_loop_named(
    namer: &mut Namer,
    carried: Vec<String>,
    op: &crate::region::LoopOp,
    args: &[Rendered],
    mut outer: HashSet<String>,
) -> (Vec<String>, String) {
    let body = &op.body;
    let mut lines = Vec::new();
    for (name, init) in carried.iter().zip(&args[2..]) {
        if init.text != *name {
            lines.push(format!("let {name} = {}", init.text));
        }
    }
    let mut inner = Block::new(body, vec![None; body.vars.len()], HashMap::new());
    outer.extend(carried.iter().cloned());
    // The loop counter: the user's name unless an enclosing block uses it.
    let index = body.inputs[0];
    inner.choose_avoiding(namer, index, 0, &outer);
    inner.holder.clear();
    let index_name = inner.names[index.index()].clone().unwrap_or_else(|| "i".into());
    outer.insert(index_name.clone());
    let given = |k: usize| {
        let text = if k <= op.carries { carried[k - 1].clone() } else { args[1 + k].text.clone() };
        let prec = if text.starts_with('-') { P_PREFIX } else { P_ATOM };
        Rendered { text, prec, depth: 0 }
    };
    for (k, v) in body.inputs.iter().enumerate().skip(1) {
        inner.given[v.index()] = Some(given(k));
    }
    // A `while` loop counts its iterations only if its body or condition reads the count.
    let counter = op.cond.as_ref().is_some_and(|c| reads_input(body, 0) || reads_input(c, 0));
    let mut test = None;
    if let Some(c) = &op.cond {
        let mut cb = Block::new(c, vec![None; c.vars.len()], HashMap::new());
        cb.inline_all = true;
        cb.given[c.inputs[0].index()] = Some(Rendered { text: index_name.clone(), prec: P_ATOM, depth: 0 });
        for (k, v) in c.inputs.iter().enumerate().skip(1) {
            cb.given[v.index()] = Some(given(k));
        }
        let (cond_lines, outs) = cb.print(namer, &outer);
        test = Some((cond_lines, outs[0].text.clone()));
    }
    let (body_lines, outs) = inner.print(namer, &outer);
    let mut tail = Vec::new();
    let mut changed: Vec<(String, String)> = carried
        .iter()
        .zip(outs)
        .filter(|(name, r)| r.text != **name)
        .map(|(name, r)| (name.clone(), r.text))
        .collect();
    // The counter of a `while` loop is printed as one more carried value (which is what
    // the printed loop is when read back), so that printing is a fixed point.
    if counter {
        changed.push((index_name.clone(), format!("{index_name} + 1")));
    }
    match changed.as_slice() {
        [] => {}
        [(name, text)] => tail.push(format!("{name} = {text}")),
        _ => {
            let (ns, ts): (Vec<String>, Vec<String>) = changed.into_iter().unzip();
            tail.push(format!("({}) = ({})", ns.join(", "), ts.join(", ")));
        }
    }
    match test {
        None => lines.push(format!(
            "for {index_name} in {}..{} {{",
            paren(&args[0], P_ADD + 1),
            paren(&args[1], P_ADD + 1)
        )),
        Some((cond_lines, cond)) => {
            if counter {
                lines.push(format!("let {index_name} = 0"));
            }
            if cond_lines.is_empty() {
                lines.push(format!("while {cond} {{"));
            } else {
                // A condition that is not one expression (it holds a loop) is computed
                // before the loop and again at the end of each iteration.
                let go = format!("{index_name}_go");
                lines.extend(cond_lines.iter().cloned());
                lines.push(format!("let {go} = {cond}"));
                lines.push(format!("while {go} {{"));
                tail.extend(cond_lines);
                tail.push(format!("{go} = {cond}"));
            }
        }
    }
    lines.extend(body_lines.into_iter().map(|l| format!("  {l}")));
    lines.extend(tail.into_iter().map(|l| format!("  {l}")));
    lines.push("}".into());
    (lines, index_name)
}

fn pattern<'a>(t: &Tree, leaves: &mut impl Iterator<Item = &'a Var>, names: &[Option<String>]) -> String {
    match t {
        Tree::Tuple(ts) => {
            let parts: Vec<String> = ts.iter().map(|t| pattern(t, leaves, names)).collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        _ => leaves.next().and_then(|v| names[v.index()].clone()).unwrap_or_else(|| "_".into()),
    }
}

fn render_tree(t: &Tree, outs: &mut impl Iterator<Item = String>) -> String {
    match t {
        Tree::Tuple(ts) => {
            let parts: Vec<String> = ts.iter().map(|t| render_tree(t, outs)).collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        Tree::Leaf | Tree::Opaque(_) => outs.next().unwrap_or_else(|| "()".into()),
    }
}

/// True when `p` reads its input `k`.
fn reads_input(p: &Program, k: usize) -> bool {
    let v = Atom::Var(p.inputs[k]);
    p.outputs.contains(&v) || p.eqns.iter().any(|e| e.args.contains(&v))
}

/// `(e)` without its outer parentheses when they enclose all of it.
fn unparen(s: &str) -> &str {
    let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else { return s };
    let mut depth = 0i32;
    for ch in inner.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return s;
        }
    }
    inner
}
