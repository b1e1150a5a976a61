//! The derived programs made from one forward pass or one linearize/transpose: JVP, VJP,
//! gradient, the JVP by two VJPs, and the Hessian-vector product (a JVP of the gradient).
//! Jacobians and Hessians, which need a plan, build on these in `planner` and `derive`.

use crate::assemble::{materialize, name_outputs, name_primal_outputs, output_name, Assembly};
use crate::emitter::{Emitter, Tan};
use crate::jvp::{dot_name, jvp};
use crate::nan_safety::needs_nan_safety;
use crate::transpose::{bar_name, linearize, transpose};
use ad_ir::prim::Prim;
use ad_ir::transform::{Mode, Request};
use ad_ir::{Atom, Program, Tree, Var};
use std::rc::Rc;

/// A derived program of one of the first-order modes (and `hvp`), unnamed; `derive`
/// checks the request and finishes the program.
pub(crate) fn first_order(p: &Program, req: &Request) -> Result<Program, String> {
    let ranges = p.param_ranges();
    let wrt_leaves: Vec<usize> = req.wrt.iter().flat_map(|&i| ranges[i].clone()).collect();
    match req.mode {
        Mode::Jvp => Ok(jvp_program(p, &req.wrt, &wrt_leaves)),
        Mode::Jvp2 => jvp2_program(p, &req.wrt),
        Mode::Vjp => vjp_program(p, &req.wrt, &wrt_leaves),
        Mode::Grad { with_value } => grad_program(p, &req.wrt, &wrt_leaves, with_value),
        Mode::Hvp => hvp_program(p, &req.wrt),
        Mode::Hessian | Mode::Jacobian(_) | Mode::Vmap(_) => {
            Err(format!("internal error: `{}` is not a first-order mode", req.mode.suffix()))
        }
    }
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

/// The VJP's parts: the linearized program with cotangent seeds for every output, and the
/// resulting input cotangents.
struct Reverse {
    em: Emitter,
    inputs: Vec<Var>,
    outputs: Vec<Atom>,
    cotangents: Vec<Atom>,
}

fn reverse(p: &Program, wrt_leaves: &[usize], seeds: SeedKind) -> Result<(Reverse, Vec<Var>), String> {
    let mut l = linearize(p, wrt_leaves, needs_nan_safety(p, wrt_leaves))?;
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

pub(crate) fn vjp_program(p: &Program, wrt: &[usize], wrt_leaves: &[usize]) -> Result<Program, String> {
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

pub(crate) fn check_scalar_output(p: &Program, what: &str) -> Result<(), String> {
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

pub(crate) fn grad_program(
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
pub(crate) fn single_array_param(p: &Program, wrt: &[usize], what: &str) -> Result<usize, String> {
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
    let g = grad_program(p, &[i], &p.param_ranges()[i].clone().collect::<Vec<_>>(), false)?;
    let leaf = g.param_ranges()[i].start;
    let mut j = jvp(&g, &[leaf], needs_nan_safety(&g, &[leaf]));
    let mut asm = Assembly::from(&g, &j.inputs);
    let v = j.tangent_inputs[0];
    j.em.b.vars[v.index()].name = Some("v".into());
    asm.add_param("v".into(), Tree::Leaf, &[v]);
    let outs = materialize(&mut j.em, &j.tangents, j.outputs.iter().copied());
    Ok(asm.finish(p, j.em.b, outs, Tree::Leaf))
}

/// J·v as the VJP of the linear map u ↦ uᵀJ (j-towns, 2017): build the VJP program, then
/// differentiate it in reverse with respect to its cotangent input.
fn jvp2_program(p: &Program, wrt: &[usize]) -> Result<Program, String> {
    let all: Vec<usize> = (0..p.params.len()).collect();
    let v = first_order(p, &Request { mode: Mode::Vjp, wrt: all.clone() })?;
    // v(args.., u) -> (out, args_bar..): linear in u, its last parameter.
    let u_param = p.params.len();
    let ranges = v.param_ranges();
    let u_leaves: Vec<usize> = ranges[u_param].clone().collect();
    let mut l = linearize(&v, &u_leaves, needs_nan_safety(&v, &u_leaves))?;
    // Cotangents for v's outputs: zero for `out`, the tangent `args_dot` for each wrt arg's
    // cotangent output.
    let n_out = p.outputs.len();
    let orig_ranges = p.param_ranges();
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
            extra: Box::default(),
        });
    }
    defs.extend(std::mem::take(&mut b.eqns));
    b.eqns = defs;
    Ok(asm.finish(p, b, outputs, Tree::Tuple(vec![p.out_tree.clone(), p.out_tree.clone()])))
}
