//! Assembling derived programs: parameters and captures around an emitter's equations,
//! the names of results (`y`, `y_dot`, `x_bar`, `jac`), and the last checks every derived
//! program passes before it is returned.

use crate::emitter::{Emitter, Tan};
use crate::simplify::simplify;
use ad_ir::prim::Prim;
use ad_ir::program::ParamDecl;
use ad_ir::transform::Request;
use ad_ir::{Atom, Builder, Program, Shape, Tree, Var};
use std::rc::Rc;

/// Assembles a program from an emitter: parameter leaves, then captures.
pub(crate) struct Assembly {
    pub params: Vec<ParamDecl>,
    pub param_inputs: Vec<Var>,
    pub capture_inputs: Vec<Var>,
}

impl Assembly {
    pub fn from(p: &Program, inputs: &[Var]) -> Assembly {
        let n = p.param_leaves();
        Assembly {
            params: p.params.clone(),
            param_inputs: inputs[..n].to_vec(),
            capture_inputs: inputs[n..].to_vec(),
        }
    }

    pub fn add_param(&mut self, name: Rc<str>, tree: Tree, leaves: &[Var]) {
        self.params.push(ParamDecl { name, tree });
        self.param_inputs.extend_from_slice(leaves);
    }

    pub fn finish(self, p: &Program, b: Builder, outputs: Vec<Atom>, out_tree: Tree) -> Program {
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
pub(crate) fn materialize(em: &mut Emitter, ts: &[Tan], like: impl IntoIterator<Item = Atom>) -> Vec<Atom> {
    ts.iter()
        .zip(like)
        .map(|(t, a)| {
            let s = em.shape(a);
            em.materialize(*t, s)
        })
        .collect()
}

/// Gives unnamed derived outputs the name of their primal output plus a suffix (`y_dot`).
pub(crate) fn name_outputs(em: &mut Emitter, primal: &[Atom], derived: &[Atom], suffix: &str) {
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
pub(crate) fn name_primal_outputs(em: &mut Emitter, outputs: &[Atom]) {
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
pub(crate) fn output_name(em: &Emitter, n: usize, i: usize) -> Rc<str> {
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

/// The last steps of every derivation: the program's name (`f_grad`), and a refusal when
/// it describes an array larger than the memory budget allows (the Jacobian of a large
/// input), so that the error is reported at the user's call instead of at allocation.
pub(crate) fn finish(p: &Program, req: &Request, mut out: Program) -> Result<Program, String> {
    out.name = format!("{}_{}", p.name, req.mode.suffix());
    if let Some(m) = ad_ir::builder::too_large(&out) {
        return Err(format!("the {} of `{}` cannot be computed: {m}", req.mode.describe(), p.name));
    }
    if cfg!(debug_assertions) {
        ad_ir::verify(&out).map_err(|e| format!("internal error: derived program is invalid: {e}"))?;
    }
    Ok(out)
}
