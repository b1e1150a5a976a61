//! Building programs equation by equation.

use crate::prim::Prim;
use crate::program::{Atom, Eqn, Program, Var, VarInfo};
use crate::shape::Shape;
use ad_syntax::Span;
use std::rc::Rc;

#[derive(Default, Debug, Clone)]
pub struct Builder {
    pub vars: Vec<VarInfo>,
    pub eqns: Vec<Eqn>,
}

/// The first array in `p` larger than the memory budget allows, as a message: a
/// transformation may describe one (a Jacobian of a large input) and must then refuse to
/// return the program.
pub fn too_large(p: &Program) -> Option<String> {
    let max = crate::shape::max_elements();
    p.vars.iter().find(|v| v.shape.size() > max).map(|v| crate::prim::too_large(v.shape.dims()))
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn new_var(&mut self, shape: Shape, name: Option<Rc<str>>) -> Var {
        self.vars.push(VarInfo { shape, name });
        Var(self.vars.len() as u32 - 1)
    }

    pub fn shape(&self, a: Atom) -> Shape {
        match a {
            Atom::Var(v) => self.vars[v.index()].shape,
            Atom::Lit(_) => Shape::scalar(),
        }
    }

    /// Appends `out = prim(args)`. The caller has checked the shapes (see [`Prim::infer`]).
    pub fn push(
        &mut self,
        prim: Prim,
        args: impl IntoIterator<Item = Atom>,
        shape: Shape,
        span: Span,
    ) -> Var {
        let out = self.new_var(shape, None);
        self.eqns.push(Eqn { out, prim, args: crate::program::args_of(args), span, extra: Box::default() });
        out
    }

    /// Appends a structured operation with one result per shape in `shapes` (at least one).
    pub fn push_multi(
        &mut self,
        prim: Prim,
        args: impl IntoIterator<Item = Atom>,
        shapes: &[Shape],
        span: Span,
    ) -> Vec<Var> {
        let outs: Vec<Var> = shapes.iter().map(|s| self.new_var(*s, None)).collect();
        self.eqns.push(Eqn {
            out: outs[0],
            prim,
            args: crate::program::args_of(args),
            span,
            extra: outs[1..].into(),
        });
        outs
    }

    /// Appends `e`'s operation with operands `args`, naming its results as `p` names `e`'s;
    /// returns the new results in order.
    pub fn copy_eqn(&mut self, p: &Program, e: &Eqn, args: crate::program::Args) -> Vec<Var> {
        let shapes: Vec<Shape> = e.outs().map(|v| p.vars[v.index()].shape).collect();
        let outs = self.push_multi(e.prim.clone(), args, &shapes, e.span);
        for (o, v) in outs.iter().zip(e.outs()) {
            self.vars[o.index()].name = p.vars[v.index()].name.clone();
        }
        outs
    }

    /// Appends `prim(args)` after inferring its shape; panics only on a shape error, so use it
    /// where shapes are known to fit (transformations of verified programs). The result may
    /// be larger than the memory budget allows: transformations check their programs with
    /// [`too_large`] before returning them.
    pub fn emit(&mut self, prim: Prim, args: impl IntoIterator<Item = Atom>, span: Span) -> Atom {
        let args = crate::program::args_of(args);
        let shapes: smallvec::SmallVec<[Shape; 3]> = args.iter().map(|a| self.shape(*a)).collect();
        let shape = match prim.infer_structure(&shapes) {
            Ok(s) => s,
            Err(e) => panic!("internal error: ill-shaped `{}` emitted: {e}", prim.name()),
        };
        Atom::Var(self.push(prim, args, shape, span))
    }

    pub fn set_name(&mut self, v: Var, name: Rc<str>) {
        self.vars[v.index()].name = Some(name);
    }

    /// Copies the equations of `p` into this builder with `inputs` in place of its inputs;
    /// returns the atoms of its outputs. Names from `p` are kept.
    pub fn inline(&mut self, p: &Program, inputs: &[Atom]) -> Vec<Atom> {
        let mut map = Subst::new(p);
        for (v, a) in p.inputs.iter().zip(inputs) {
            map.set(*v, *a);
        }
        for e in &p.eqns {
            let args = crate::program::args_of(e.args.iter().map(|a| map.get(*a)));
            for (v, o) in e.outs().zip(self.copy_eqn(p, e, args)) {
                map.set(v, Atom::Var(o));
            }
        }
        p.outputs.iter().map(|a| map.get(*a)).collect()
    }
}

/// Where the variables of a program being copied went: for each, the atom that stands for
/// it in the program being built. Every pass that copies a program equation by equation
/// (inlining, JVP, simplification) looks its operands up here.
pub struct Subst(Vec<Option<Atom>>);

impl Subst {
    /// An empty substitution for the variables of `p`.
    pub fn new(p: &Program) -> Subst {
        Subst(vec![None; p.vars.len()])
    }

    pub fn set(&mut self, v: Var, a: Atom) {
        self.0[v.index()] = Some(a);
    }

    /// The atom standing for `a`; literals stand for themselves. Copying a verified program
    /// in order defines every variable before its first use, so a miss is a bug in the pass.
    pub fn get(&self, a: Atom) -> Atom {
        match a {
            Atom::Var(v) => {
                self.0[v.index()].unwrap_or_else(|| panic!("internal error: {v:?} used before definition"))
            }
            lit => lit,
        }
    }
}
