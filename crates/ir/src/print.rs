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
    const KEYWORDS: &[&str] = &["def", "let", "for", "in", "while", "if", "else", "true", "false"];
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
            Binary::Max | Binary::Min | Binary::Atan2 | Binary::SafeMul => call(b.name(), &[]),
        },
        Prim::MatMul => infix("@", P_MUL, P_MUL, P_MUL + 1),
        Prim::Transpose => (format!("{}'", paren(&args[0], P_POSTFIX)), P_POSTFIX),
        Prim::Permute(perm) => {
            let axes: Vec<String> = perm.iter().map(|a| a.to_string()).collect();
            let tuple =
                if axes.len() == 1 { format!("({},)", axes[0]) } else { format!("({})", axes.join(", ")) };
            call("transpose", &[tuple])
        }
        Prim::Sum(axes) | Prim::Amax(axes) => {
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
        Prim::Conv2d(c) => call("conv2d", &conv_args(c)),
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
    }
}

/// A convolution's static arguments as a script writes them: `1, "same"`.
fn conv_args(c: &crate::prim::Conv) -> Vec<String> {
    vec![c.stride.to_string(), format!("{:?}", c.padding.name())]
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

/// Prints `p` as a `def`. Fails only for programs whose parameters are function values,
/// which have no `.ad` parameter syntax.
pub fn print_program(p: &Program) -> Result<String, String> {
    if p.out_tree.holds_function() {
        return Err(format!("`{}` returns a function, which cannot be printed as a program", p.name));
    }
    let n = p.vars.len();
    let mut def_of: Vec<Option<usize>> = vec![None; n];
    for (i, e) in p.eqns.iter().enumerate() {
        def_of[e.out.index()] = Some(i);
    }
    let mut uses = vec![0usize; n];
    for e in &p.eqns {
        for a in &e.args {
            if let Atom::Var(v) = a {
                uses[v.index()] += 1;
            }
        }
    }
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            uses[v.index()] += 1;
        }
    }

    // Pass 1: decide which values are inlined, rendering with provisional names.
    let provisional = |v: Var| p.name_of(v).map(sanitize).unwrap_or_else(|| "t00".to_string());
    let mut inline = vec![false; n];
    let mut pre: Vec<Option<Rendered>> = vec![None; n];
    for e in &p.eqns {
        let args: Vec<Rendered> = e
            .args
            .iter()
            .map(|a| match a {
                Atom::Lit(x) => lit(*x),
                Atom::Var(v) if inline[v.index()] => pre[v.index()].clone().unwrap_or_else(|| lit(0.0)),
                Atom::Var(v) => Rendered { text: provisional(*v), prec: P_ATOM, depth: 0 },
            })
            .collect();
        let shapes: Vec<_> = e.args.iter().map(|a| p.shape(*a)).collect();
        let (text, prec) = render_eqn(&e.prim, &args, &shapes);
        let depth = 1 + args.iter().map(|a| a.depth).max().unwrap_or(0);
        let o = e.out.index();
        inline[o] = p.vars[o].name.is_none()
            && uses[o] == 1
            && depth <= MAX_INLINE_DEPTH
            && text.len() <= MAX_INLINE_LEN;
        pre[o] = Some(Rendered { text, prec, depth });
    }

    // Pass 2: where is each value last needed? A value referenced inside an inlined
    // expression is needed where that expression is finally printed.
    let end = p.eqns.len();
    let mut last_use = vec![0usize; n];
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
        if inline[e.out.index()] {
            continue;
        }
        for a in &e.args {
            if let Atom::Var(w) = a {
                mark(p, *w, i, &inline, &def_of, &mut last_use);
            }
        }
    }
    for a in &p.outputs {
        if let Atom::Var(w) = a {
            mark(p, *w, end, &inline, &def_of, &mut last_use);
        }
    }

    // Pass 3: names.
    let mut taken: HashSet<String> = HashSet::new();
    for c in &p.captures {
        taken.insert(c.name.to_string());
    }
    // A parameter keeps its name for the whole body, so that reading the program never
    // meets it rebound (a later `let v = ...` in an HVP reads as the direction `v`).
    for d in &p.params {
        taken.insert(sanitize(&d.name));
    }
    let user_names: HashSet<String> = p.vars.iter().filter_map(|v| v.name.as_deref().map(sanitize)).collect();
    let mut holder: HashMap<String, Var> = HashMap::new();
    // The next suffix to try for each base name, so that many values of one name (a long
    // unrolled loop) do not each search from `_2` upwards.
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<Option<String>> = vec![None; n];
    let mut temp = 0usize;
    let mut choose =
        |v: Var, at: usize, names: &mut Vec<Option<String>>, holder: &mut HashMap<String, Var>| {
            let base = p.name_of(v).map(sanitize);
            let free = |cand: &str, holder: &HashMap<String, Var>| {
                !is_reserved(cand)
                    && !taken.contains(cand)
                    && holder.get(cand).is_none_or(|w| last_use[w.index()] <= at && *w != v)
            };
            let name = match base {
                Some(b) => {
                    let mut cand = b.clone();
                    if !free(&cand, holder) {
                        let k = next_suffix.entry(b.clone()).or_insert(2);
                        loop {
                            cand = format!("{b}_{k}");
                            *k += 1;
                            if free(&cand, holder) {
                                break;
                            }
                        }
                    }
                    cand
                }
                None => loop {
                    temp += 1;
                    let cand = format!("t{temp}");
                    if !user_names.contains(&cand) && free(&cand, holder) {
                        break cand;
                    }
                },
            };
            holder.insert(name.clone(), v);
            names[v.index()] = Some(name);
        };

    let mut header = Vec::new();
    let mut prologue = Vec::new();
    let mut input = p.inputs.iter();
    for param in &p.params {
        match &param.tree {
            Tree::Leaf => {
                let v = *input.next().ok_or("inputs do not match parameters")?;
                let pname = sanitize(&param.name);
                holder.insert(pname.clone(), v);
                names[v.index()] = Some(pname.clone());
                header.push(format!("{pname}: {}", p.var_shape(v)));
            }
            Tree::Tuple(_) => {
                let pname = sanitize(&param.name);
                header.push(pname.clone());
                let mut leaves = Vec::new();
                for _ in 0..param.tree.leaves() {
                    let v = *input.next().ok_or("inputs do not match parameters")?;
                    choose(v, 0, &mut names, &mut holder);
                    leaves.push(v);
                }
                let mut it = leaves.iter();
                let pat = pattern(&param.tree, &mut it, &names);
                prologue.push(format!("let {pat} = {pname}"));
            }
            Tree::Opaque(_) => {
                return Err(format!(
                    "`{}` takes a function as parameter `{}`, which cannot be printed",
                    p.name, param.name
                ))
            }
        }
    }
    for c in &p.captures {
        let leaves: Vec<Var> = input.by_ref().take(c.tree.leaves()).copied().collect();
        match &c.tree {
            Tree::Leaf => {
                if let Some(v) = leaves.first() {
                    names[v.index()] = Some(c.name.to_string());
                }
            }
            Tree::Tuple(_) => {
                for v in &leaves {
                    choose(*v, 0, &mut names, &mut holder);
                }
                let mut it = leaves.iter();
                let pat = pattern(&c.tree, &mut it, &names);
                prologue.push(format!("let {pat} = {}", c.name));
            }
            Tree::Opaque(_) => {
                return Err(format!("`{}` reads the function `{}` as a value", p.name, c.name))
            }
        }
    }
    for (i, e) in p.eqns.iter().enumerate() {
        if !inline[e.out.index()] {
            choose(e.out, i, &mut names, &mut holder);
        }
    }

    // Pass 4: render with the final names.
    let mut body: Vec<String> = prologue;
    let mut fin: Vec<Option<Rendered>> = vec![None; n];
    let atom = |a: &Atom, fin: &Vec<Option<Rendered>>, names: &Vec<Option<String>>| match a {
        Atom::Lit(x) => lit(*x),
        Atom::Var(v) => match &fin[v.index()] {
            Some(r) if inline[v.index()] => r.clone(),
            _ => Rendered {
                text: names[v.index()].clone().unwrap_or_else(|| format!("v{}", v.0)),
                prec: P_ATOM,
                depth: 0,
            },
        },
    };
    for e in &p.eqns {
        let args: Vec<Rendered> = e.args.iter().map(|a| atom(a, &fin, &names)).collect();
        let shapes: Vec<_> = e.args.iter().map(|a| p.shape(*a)).collect();
        let (text, prec) = render_eqn(&e.prim, &args, &shapes);
        let o = e.out.index();
        if inline[o] {
            fin[o] = Some(Rendered { text, prec, depth: 0 });
        } else {
            body.push(format!("let {} = {text}", names[o].as_deref().unwrap_or("_")));
        }
    }
    let mut outs = p.outputs.iter().map(|a| atom(a, &fin, &names).text);
    let result = render_tree(&p.out_tree, &mut outs);

    let mut s = String::new();
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
