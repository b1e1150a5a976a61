//! Derived programs: JVP, VJP, gradient, Hessian-vector product, Hessian, Jacobians, and the
//! JVP computed by two VJPs, each assembled from the forward pass and linearize/transpose,
//! then simplified. Every result is an ordinary program with parameters and a result
//! structure, so it prints as `.ad` and can be derived again.

use crate::emitter::{Emitter, Tan};
use crate::jvp::{dot_name, jvp};
use crate::simplify::simplify;
use crate::transpose::{bar_name, linearize, transpose};
use ad_ir::prim::{ConstArray, Prim};
use ad_ir::program::ParamDecl;
use ad_ir::{Array, Atom, Builder, Program, Shape, Tree, Var};
use std::rc::Rc;

pub use ad_ir::transform::{jacobian_shape, JacMode, Mode, Request};

/// Input-leaf ranges of each parameter.
pub fn param_ranges(p: &Program) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    p.params
        .iter()
        .map(|d| {
            let r = start..start + d.tree.leaves();
            start = r.end;
            r
        })
        .collect()
}

/// Derivatives use strong-zero products when some `where` selects between values that
/// depend on the inputs being differentiated: then the unselected branch must contribute
/// exactly zero even where its own derivative is infinite or NaN. (A `where` whose branches
/// carry no derivative, such as one under `stop_gradient`, does not count.)
pub fn needs_nan_safety(p: &Program, wrt_leaves: &[usize]) -> bool {
    let blocks = |prim: &Prim| match prim {
        Prim::StopGradient | Prim::Argmax(_) | Prim::OneHot(_) => true,
        Prim::Binary(b) => b.is_predicate(),
        _ => false,
    };
    // Which values depend on the inputs being differentiated...
    let mut dep = vec![false; p.vars.len()];
    for &i in wrt_leaves {
        dep[p.inputs[i].index()] = true;
    }
    let depends = |dep: &Vec<bool>, a: &Atom| a.var().is_some_and(|v| dep[v.index()]);
    for e in &p.eqns {
        dep[e.out.index()] = !blocks(&e.prim) && e.args.iter().any(|a| depends(&dep, a));
    }
    // ... and which ones a derivative of the outputs flows back into.
    let mut reaches = vec![false; p.vars.len()];
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            reaches[v.index()] = true;
        }
    }
    for e in p.eqns.iter().rev() {
        if reaches[e.out.index()] && !blocks(&e.prim) {
            for a in &e.args {
                if let Atom::Var(v) = a {
                    reaches[v.index()] = true;
                }
            }
        }
    }
    // A `where` selecting between values that carry derivatives needs strong zeros; so does
    // a strong-zero product that carries derivatives (a first derivative of such a `where`
    // being differentiated again: its zeros must keep cancelling the unselected branch's
    // infinite or NaN coefficients at every order).
    p.eqns.iter().any(|e| {
        reaches[e.out.index()]
            && match e.prim {
                Prim::Where => e.args[1..].iter().any(|a| depends(&dep, a)),
                Prim::Binary(ad_ir::prim::Binary::SafeMul) | Prim::SafeMatMul | Prim::SafeSolve => {
                    e.args.iter().any(|a| depends(&dep, a))
                }
                _ => false,
            }
    })
}

pub fn derive(p: &Program, req: &Request) -> Result<Program, String> {
    let ranges = param_ranges(p);
    for &i in &req.wrt {
        let d = p.params.get(i).ok_or_else(|| format!("`{}` has no parameter {i}", p.name))?;
        if d.tree.holds_function() {
            return Err(format!("cannot differentiate with respect to `{}`: it holds a function", d.name));
        }
    }
    if p.out_tree.holds_function() {
        return Err(format!("cannot differentiate `{}`: its result holds a function", p.name));
    }
    let wrt_leaves: Vec<usize> = req.wrt.iter().flat_map(|&i| ranges[i].clone()).collect();
    let mut out = match req.mode {
        Mode::Jvp => jvp_program(p, &req.wrt, &wrt_leaves),
        Mode::Jvp2 => jvp2_program(p, &req.wrt)?,
        Mode::Vjp => vjp_program(p, &req.wrt, &wrt_leaves)?,
        Mode::Grad { with_value } => grad_program(p, &req.wrt, &wrt_leaves, with_value)?,
        Mode::Hvp => hvp_program(p, &req.wrt)?,
        Mode::Hessian => hessian_program(p, &req.wrt)?,
        Mode::Jacobian(m) => jacobian_program(p, &req.wrt, m)?,
    };
    out.name = format!("{}_{}", p.name, req.mode.suffix());
    // A derived program may describe arrays no machine holds (the Jacobian of a large
    // input): say so at the user's call rather than return it.
    if let Some(m) = ad_ir::builder::too_large(&out) {
        return Err(format!("the {} of `{}` cannot be computed: {m}", req.mode.describe(), p.name));
    }
    if cfg!(debug_assertions) {
        ad_ir::verify(&out).map_err(|e| format!("internal error: derived program is invalid: {e}"))?;
    }
    Ok(out)
}

/// Assembles a program from an emitter: parameter leaves, then captures.
struct Assembly {
    params: Vec<ParamDecl>,
    param_inputs: Vec<Var>,
    capture_inputs: Vec<Var>,
}

impl Assembly {
    fn from(p: &Program, inputs: &[Var]) -> Assembly {
        let n = p.param_leaves();
        Assembly {
            params: p.params.clone(),
            param_inputs: inputs[..n].to_vec(),
            capture_inputs: inputs[n..].to_vec(),
        }
    }

    fn add_param(&mut self, name: Rc<str>, tree: Tree, leaves: &[Var]) {
        self.params.push(ParamDecl { name, tree });
        self.param_inputs.extend_from_slice(leaves);
    }

    fn finish(self, p: &Program, b: Builder, outputs: Vec<Atom>, out_tree: Tree) -> Program {
        let mut inputs = self.param_inputs;
        inputs.extend(self.capture_inputs);
        let prog = Program {
            name: p.name.clone(),
            vars: b.vars,
            inputs,
            params: self.params,
            captures: p.captures.clone(),
            eqns: b.eqns,
            outputs,
            out_tree,
            span: p.span,
        };
        simplify(prog)
    }
}

/// Tangents or cotangents as atoms (zeros where symbolic), shaped like the values `like`.
fn materialize(em: &mut Emitter, ts: &[Tan], like: impl IntoIterator<Item = Atom>) -> Vec<Atom> {
    ts.iter()
        .zip(like)
        .map(|(t, a)| {
            let s = em.shape(a);
            em.materialize(*t, s)
        })
        .collect()
}

fn jvp_program(p: &Program, wrt: &[usize], wrt_leaves: &[usize]) -> Program {
    let mut j = jvp(p, wrt_leaves, needs_nan_safety(p, wrt_leaves));
    let mut asm = Assembly::from(p, &j.inputs);
    let mut k = 0;
    for &i in wrt {
        let d = &p.params[i];
        let n = d.tree.leaves();
        asm.add_param(format!("{}_dot", d.name).into(), d.tree.clone(), &j.tangent_inputs[k..k + n]);
        k += n;
    }
    name_primal_outputs(&mut j.em, &j.outputs);
    let mut outputs = j.outputs.clone();
    let tangents = materialize(&mut j.em, &j.tangents, j.outputs.iter().copied());
    name_outputs(&mut j.em, &j.outputs, &tangents, "_dot");
    outputs.extend(tangents);
    asm.finish(p, j.em.b, outputs, Tree::Tuple(vec![p.out_tree.clone(), p.out_tree.clone()]))
}

/// Gives unnamed derived outputs the name of their primal output plus a suffix (`y_dot`).
fn name_outputs(em: &mut Emitter, primal: &[Atom], derived: &[Atom], suffix: &str) {
    for (i, (a, d)) in primal.iter().zip(derived).enumerate() {
        if let Atom::Var(dv) = d {
            if em.b.vars[dv.index()].name.is_none() {
                let base = match a {
                    Atom::Var(v) => em.b.vars[v.index()].name.clone(),
                    _ => None,
                };
                let base = base.unwrap_or_else(|| output_name(em, primal.len(), i));
                em.b.vars[dv.index()].name = Some(format!("{base}{suffix}").into());
            }
        }
    }
}

/// Names unnamed results `y` (or `y0, y1, ...`), so that derived programs read
/// `(y, y_dot)`.
fn name_primal_outputs(em: &mut Emitter, outputs: &[Atom]) {
    for (i, a) in outputs.iter().enumerate() {
        if let Atom::Var(v) = a {
            if em.b.vars[v.index()].name.is_none() {
                em.b.vars[v.index()].name = Some(output_name(em, outputs.len(), i));
            }
        }
    }
}

/// The name of an unnamed result: `y`, or `y0, y1, ...` for several; `out` (`out0`, ...)
/// when the program already has values called `y`, so that `y_bar` stays unambiguous.
fn output_name(em: &Emitter, n: usize, i: usize) -> Rc<str> {
    let taken = |base: &str| {
        em.b.vars
            .iter()
            .any(|v| v.name.as_deref().is_some_and(|n| n == base || n.starts_with(&format!("{base}_"))))
    };
    let base = ["y", "out", "result"].into_iter().find(|b| !taken(b)).unwrap_or("result");
    if n == 1 {
        base.into()
    } else {
        format!("{base}{i}").into()
    }
}

/// The VJP's parts: the linearized program with cotangent seeds for every output, and the
/// resulting input cotangents.
struct Reverse {
    em: Emitter,
    inputs: Vec<Var>,
    outputs: Vec<Atom>,
    cotangents: Vec<Atom>,
}

fn reverse(p: &Program, wrt_leaves: &[usize], seeds: SeedKind) -> Result<(Reverse, Vec<Var>), String> {
    let mut l = linearize(p, wrt_leaves, needs_nan_safety(p, wrt_leaves));
    let outputs = l.jvp.outputs.clone();
    if let SeedKind::Inputs = seeds {
        name_primal_outputs(&mut l.jvp.em, &outputs);
    }
    let mut seed_inputs = Vec::new();
    let seed_atoms: Vec<Atom> = match seeds {
        SeedKind::Inputs => outputs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let s = l.jvp.em.shape(*a);
                let base = match a {
                    Atom::Var(v) => l.jvp.em.b.vars[v.index()].name.clone(),
                    _ => None,
                };
                let name = bar_name(Some(&base.unwrap_or_else(|| output_name(&l.jvp.em, outputs.len(), i))));
                let v = l.jvp.em.new_var(s, name, false);
                seed_inputs.push(v);
                Atom::Var(v)
            })
            .collect(),
        SeedKind::One => vec![Atom::Lit(1.0)],
    };
    let pairs: Vec<(Tan, Atom)> = l.jvp.tangents.iter().copied().zip(seed_atoms).collect();
    let wanted = l.jvp.tangent_inputs.clone();
    let cts = transpose(&mut l, &pairs, &wanted)?;
    let inputs = l.jvp.inputs.clone();
    let mut em = l.jvp.em;
    let cotangents = materialize(&mut em, &cts, wanted.iter().map(|v| Atom::Var(*v)));
    for (c, &i) in cotangents.iter().zip(wrt_leaves) {
        if let Atom::Var(cv) = c {
            if em.b.vars[cv.index()].name.is_none() {
                em.b.vars[cv.index()].name = bar_name(p.vars[p.inputs[i].index()].name.as_deref());
            }
        }
    }
    Ok((Reverse { em, inputs, outputs, cotangents }, seed_inputs))
}

enum SeedKind {
    /// One cotangent input per output leaf (`vjp`).
    Inputs,
    /// The single scalar output's cotangent is 1 (`grad`).
    One,
}

fn wrt_tree(p: &Program, wrt: &[usize]) -> Tree {
    match wrt {
        [i] => p.params[*i].tree.clone(),
        _ => Tree::Tuple(wrt.iter().map(|i| p.params[*i].tree.clone()).collect()),
    }
}

fn vjp_program(p: &Program, wrt: &[usize], wrt_leaves: &[usize]) -> Result<Program, String> {
    let (r, seeds) = reverse(p, wrt_leaves, SeedKind::Inputs)?;
    let mut asm = Assembly::from(p, &r.inputs);
    // The cotangent parameter is named after the result: `y_bar`, or `out_bar` when the
    // program has its own `y`.
    let seed_name: Rc<str> = match (&p.out_tree, seeds.as_slice()) {
        (Tree::Leaf, [v]) => r.em.b.vars[v.index()].name.clone().unwrap_or_else(|| "y_bar".into()),
        _ => format!("{}_bar", output_name(&r.em, 1, 0)).into(),
    };
    asm.add_param(seed_name, p.out_tree.clone(), &seeds);
    let mut outputs = r.outputs;
    outputs.extend(r.cotangents);
    let mut trees = vec![p.out_tree.clone()];
    trees.extend(wrt.iter().map(|i| p.params[*i].tree.clone()));
    Ok(asm.finish(p, r.em.b, outputs, Tree::Tuple(trees)))
}

fn check_scalar_output(p: &Program, what: &str) -> Result<(), String> {
    let scalar = p.out_tree == Tree::Leaf && p.outputs.len() == 1 && p.shape(p.outputs[0]).is_scalar();
    if scalar {
        Ok(())
    } else {
        let desc = if p.out_tree == Tree::Leaf && p.outputs.len() == 1 {
            format!("an array of shape {}", p.shape(p.outputs[0]))
        } else {
            "a tuple".to_string()
        };
        Err(format!("{what} needs a function with a scalar result, but `{}` returns {desc}; use `jacobian` or `vjp` for non-scalar results", p.name))
    }
}

fn grad_program(
    p: &Program,
    wrt: &[usize],
    wrt_leaves: &[usize],
    with_value: bool,
) -> Result<Program, String> {
    check_scalar_output(p, "`grad`")?;
    let (r, _) = reverse(p, wrt_leaves, SeedKind::One)?;
    let asm = Assembly::from(p, &r.inputs);
    let tree = wrt_tree(p, wrt);
    let (outputs, out_tree) = if with_value {
        let mut o = r.outputs;
        o.extend(r.cotangents);
        (o, Tree::Tuple(vec![Tree::Leaf, tree]))
    } else {
        (r.cotangents, tree)
    };
    Ok(asm.finish(p, r.em.b, outputs, out_tree))
}

/// The single array parameter that Hessians, HVPs and Jacobians differentiate.
fn single_array_param(p: &Program, wrt: &[usize], what: &str) -> Result<usize, String> {
    match wrt {
        [i] if p.params[*i].tree == Tree::Leaf => Ok(*i),
        [i] => Err(format!(
            "{what} differentiates with respect to one array, but `{}` is a tuple",
            p.params[*i].name
        )),
        _ => Err(format!("{what} differentiates with respect to one argument")),
    }
}

fn hvp_program(p: &Program, wrt: &[usize]) -> Result<Program, String> {
    let i = single_array_param(p, wrt, "`hvp`")?;
    check_scalar_output(p, "`hvp`")?;
    let g = derive(p, &Request { mode: Mode::Grad { with_value: false }, wrt: vec![i] })?;
    let leaf = param_ranges(&g)[i].start;
    let mut j = jvp(&g, &[leaf], needs_nan_safety(&g, &[leaf]));
    let mut asm = Assembly::from(&g, &j.inputs);
    let v = j.tangent_inputs[0];
    j.em.b.vars[v.index()].name = Some("v".into());
    asm.add_param("v".into(), Tree::Leaf, &[v]);
    let outs = materialize(&mut j.em, &j.tangents, j.outputs.iter().copied());
    Ok(asm.finish(p, j.em.b, outs, Tree::Leaf))
}

fn hessian_program(p: &Program, wrt: &[usize]) -> Result<Program, String> {
    let i = single_array_param(p, wrt, "`hessian`")?;
    check_scalar_output(p, "`hessian`")?;
    let g = derive(p, &Request { mode: Mode::Grad { with_value: false }, wrt: vec![i] })?;
    // Forward over reverse, all directions at once where the program allows.
    crate::planner::jacobian_program(&g, i, JacMode::Forward)
}

fn jacobian_program(p: &Program, wrt: &[usize], mode: JacMode) -> Result<Program, String> {
    let i = single_array_param(p, wrt, "`jacobian`")?;
    crate::planner::jacobian_program(p, i, mode)
}

/// Unrolled Jacobians (one pass per basis direction, inlined) stop at this many equations:
/// past it, the program alone would take gigabytes.
const MAX_UNROLLED_EQNS: usize = 4_000_000;

/// A one-hot array of shape `s` with a 1 at flat position `k`.
fn basis(s: Shape, k: usize) -> Array {
    let mut d = vec![0.0; s.size()];
    d[k] = 1.0;
    Array::new(s, d)
}

/// The Jacobian of `p`'s single array result with respect to its array parameter `i` (the
/// planner has checked both), by one JVP per input element (forward) or one VJP per output
/// element (reverse), unrolled: for programs whose linear values are matrices, where
/// batching does not apply. The primal part is shared after simplification.
pub(crate) fn jacobian_unrolled(p: &Program, i: usize, mode: JacMode) -> Result<Program, String> {
    let leaf = param_ranges(p)[i].start;
    let in_shape = p.var_shape(p.inputs[leaf]);
    let out_shape = p.shape(p.outputs[0]);
    let (n_in, n_out) = (in_shape.size(), out_shape.size());
    let forward = match mode {
        JacMode::Forward => true,
        JacMode::Reverse => false,
        JacMode::Auto => n_in <= n_out,
    };
    // The one-direction program, then one inlined copy of it per basis direction.
    let (dir_prog, dir_shape) = if forward {
        (derive(p, &Request { mode: Mode::Jvp, wrt: vec![i] })?, in_shape)
    } else {
        (derive(p, &Request { mode: Mode::Vjp, wrt: vec![i] })?, out_shape)
    };
    let mut b = Builder::new();
    let inputs: Vec<Var> =
        p.inputs.iter().map(|v| b.new_var(p.var_shape(*v), p.vars[v.index()].name.clone())).collect();
    let n_params = p.param_leaves();
    let span = p.span;
    let count = if forward { n_in } else { n_out };
    let flat_len = if forward { n_out } else { n_in };
    if count.saturating_mul(dir_prog.eqns.len().max(1)) > MAX_UNROLLED_EQNS {
        return Err(format!(
            "the Jacobian of `{}` would take {count} passes of {} equations each, more than the limit of {MAX_UNROLLED_EQNS} equations",
            p.name,
            dir_prog.eqns.len()
        ));
    }
    let mut parts = Vec::with_capacity(count);
    for k in 0..count {
        let e = b.emit(Prim::Const(ConstArray(Rc::new(basis(dir_shape, k)))), vec![], span);
        // The direction program's inputs: parameters, the direction, then captures.
        let mut args: Vec<Atom> = inputs[..n_params].iter().map(|v| Atom::Var(*v)).collect();
        args.push(e);
        args.extend(inputs[n_params..].iter().map(|v| Atom::Var(*v)));
        let outs = b.inline(&dir_prog, &args);
        // Forward: (out, out_dot); reverse: (out, in_bar).
        let d = outs[1];
        let flat = Shape::vector(flat_len);
        let d = if b.shape(d) == flat { d } else { b.emit(Prim::Reshape(flat), vec![d], span) };
        parts.push(d);
    }
    let stacked = b.emit(Prim::Stack, parts, span);
    // Forward stacks columns: transpose them into rows.
    let rows = if forward && n_out > 1 { b.emit(Prim::Transpose, vec![stacked], span) } else { stacked };
    Ok(jacobian_result(p, b, &inputs, rows, jacobian_shape(out_shape, in_shape)))
}

/// Finishes a Jacobian program: the `[n_out, n_in]` matrix `flat`, computed in `b` from
/// `inputs`, reshaped to the Jacobian's shape `target` and named `jac`.
pub(crate) fn jacobian_result(
    p: &Program,
    mut b: Builder,
    inputs: &[Var],
    flat: Atom,
    target: Shape,
) -> Program {
    let j = if b.shape(flat) == target { flat } else { b.emit(Prim::Reshape(target), [flat], p.span) };
    if let Atom::Var(v) = j {
        b.vars[v.index()].name = Some("jac".into());
    }
    Assembly::from(p, inputs).finish(p, b, vec![j], Tree::Leaf)
}

/// J·v as the VJP of the linear map u ↦ uᵀJ (j-towns, 2017): build the VJP program, then
/// differentiate it in reverse with respect to its cotangent input.
fn jvp2_program(p: &Program, wrt: &[usize]) -> Result<Program, String> {
    let all: Vec<usize> = (0..p.params.len()).collect();
    let v = derive(p, &Request { mode: Mode::Vjp, wrt: all.clone() })?;
    // v(args.., u) -> (out, args_bar..): linear in u, its last parameter.
    let u_param = p.params.len();
    let ranges = param_ranges(&v);
    let u_leaves: Vec<usize> = ranges[u_param].clone().collect();
    let mut l = linearize(&v, &u_leaves, needs_nan_safety(&v, &u_leaves));
    // Cotangents for v's outputs: zero for `out`, the tangent `args_dot` for each wrt arg's
    // cotangent output.
    let n_out = p.outputs.len();
    let orig_ranges = param_ranges(p);
    let mut tangent_params: Vec<(Rc<str>, Tree, Vec<Var>)> = Vec::new();
    let mut seeds: Vec<(Tan, Atom)> = Vec::new();
    let mut offset = n_out;
    for (k, d) in p.params.iter().enumerate() {
        let r = orig_ranges[k].clone();
        let mut leaves = Vec::new();
        for j in r.clone() {
            let s = p.var_shape(p.inputs[j]);
            let t = l.jvp.tangents[offset + (j - r.start)];
            if wrt.contains(&k) {
                let tv = l.jvp.em.new_var(s, dot_name(p.vars[p.inputs[j].index()].name.as_deref()), false);
                leaves.push(tv);
                seeds.push((t, Atom::Var(tv)));
            }
        }
        offset += r.len();
        if wrt.contains(&k) {
            tangent_params.push((format!("{}_dot", d.name).into(), d.tree.clone(), leaves));
        }
    }
    let wanted = l.jvp.tangent_inputs.clone();
    let cts = transpose(&mut l, &seeds, &wanted)?;
    let inputs = l.jvp.inputs.clone();
    let mut em = l.jvp.em;
    // v's inputs: p's parameters, u, then captures. The result does not depend on u: set it
    // to zeros.
    let n_params = p.param_leaves();
    let u_inputs: Vec<Var> = u_leaves.iter().map(|&k| inputs[k]).collect();
    let mut asm = Assembly {
        params: p.params.clone(),
        param_inputs: inputs[..n_params].to_vec(),
        capture_inputs: inputs[n_params + u_inputs.len()..].to_vec(),
    };
    for (name, tree, leaves) in tangent_params {
        asm.add_param(name, tree, &leaves);
    }
    let mut outputs = l.jvp.outputs[..n_out].to_vec();
    name_primal_outputs(&mut em, &outputs);
    let out_atoms = outputs.clone();
    let tangents = materialize(&mut em, &cts, u_inputs.iter().map(|v| Atom::Var(*v)));
    for t in &tangents {
        if let Atom::Var(v) = t {
            em.b.vars[v.index()].name = None;
        }
    }
    name_outputs(&mut em, &out_atoms, &tangents, "_dot");
    outputs.extend(tangents);
    // Replace u by zeros: prepend definitions (its value never matters).
    let mut b = em.b;
    let mut defs = Vec::new();
    for uv in &u_inputs {
        let s = b.vars[uv.index()].shape;
        defs.push(ad_ir::Eqn {
            out: *uv,
            prim: Prim::Full(s, ad_ir::prim::F64(0.0)),
            args: Default::default(),
            span: p.span,
        });
    }
    defs.extend(std::mem::take(&mut b.eqns));
    b.eqns = defs;
    Ok(asm.finish(p, b, outputs, Tree::Tuple(vec![p.out_tree.clone(), p.out_tree.clone()])))
}
