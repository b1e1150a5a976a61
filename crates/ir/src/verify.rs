//! The IR verifier: single assignment, definition before use, and shapes that agree with
//! every primitive's shape rule. Run after every pass in debug builds and tests.

use crate::program::{Atom, Program};
use crate::shape::Shape;

pub fn verify(p: &Program) -> Result<(), String> {
    let n = p.vars.len();
    let mut defined = vec![false; n];
    let check_var = |v: usize, what: &str| -> Result<(), String> {
        if v >= n {
            return Err(format!("{}: {what} refers to v{v}, which does not exist", p.name));
        }
        Ok(())
    };
    if p.inputs.len() != p.param_leaves() + p.captures.iter().map(|c| c.tree.leaves()).sum::<usize>() {
        return Err(format!("{}: inputs do not match the parameter and capture structure", p.name));
    }
    for v in &p.inputs {
        check_var(v.index(), "an input")?;
        if std::mem::replace(&mut defined[v.index()], true) {
            return Err(format!("{}: input v{} is bound twice", p.name, v.0));
        }
    }
    for (i, e) in p.eqns.iter().enumerate() {
        let mut shapes: Vec<Shape> = Vec::with_capacity(e.args.len());
        for a in &e.args {
            match a {
                Atom::Var(v) => {
                    check_var(v.index(), "an argument")?;
                    if !defined[v.index()] {
                        return Err(format!(
                            "{}: equation {i} (`{}`) uses v{} before it is defined",
                            p.name,
                            e.prim.name(),
                            v.0
                        ));
                    }
                    shapes.push(p.vars[v.index()].shape);
                }
                Atom::Lit(_) => shapes.push(Shape::scalar()),
            }
        }
        let shape = e.prim.infer(&shapes).map_err(|m| format!("{}: equation {i}: {m}", p.name))?;
        let declared: Vec<Shape> = match &e.prim {
            crate::Prim::Loop(op) => {
                verify(&op.body).map_err(|m| format!("{}: the body of loop {i}: {m}", p.name))?;
                if let Some(c) = &op.cond {
                    verify(c).map_err(|m| format!("{}: the condition of loop {i}: {m}", p.name))?;
                    let ins =
                        |q: &crate::Program| q.inputs.iter().map(|v| q.var_shape(*v)).collect::<Vec<_>>();
                    if ins(c) != ins(&op.body) || c.outputs.len() != 1 || !c.shape(c.outputs[0]).is_scalar() {
                        return Err(format!(
                            "{}: the condition of loop {i} does not take the body's inputs to a scalar",
                            p.name
                        ));
                    }
                }
                op.out_shapes()
            }
            crate::Prim::Custom(op) | crate::Prim::CustomLin(op) => {
                for q in op.programs() {
                    verify(q)
                        .map_err(|m| format!("{}: `{}` of `{}` {i}: {m}", p.name, q.name, op.keyword()))?;
                }
                op.out_shapes()
            }
            crate::Prim::Cond(op) => {
                verify(&op.then).map_err(|m| format!("{}: the first branch of `if` {i}: {m}", p.name))?;
                verify(&op.els).map_err(|m| format!("{}: the second branch of `if` {i}: {m}", p.name))?;
                op.out_shapes()
            }
            crate::Prim::ReverseLoop(op) => {
                verify(&op.back).map_err(|m| format!("{}: the backward step of loop {i}: {m}", p.name))?;
                op.out_shapes()
            }
            _ => vec![shape],
        };
        if declared.len() != 1 + e.extra.len() {
            return Err(format!(
                "{}: equation {i} (`{}`) has the wrong number of results",
                p.name,
                e.prim.name()
            ));
        }
        for (out, shape) in e.outs().zip(declared) {
            check_var(out.index(), "a result")?;
            if shape != p.vars[out.index()].shape {
                return Err(format!(
                    "{}: equation {i} (`{}`) yields {shape} but v{} is declared {}",
                    p.name,
                    e.prim.name(),
                    out.0,
                    p.vars[out.index()].shape
                ));
            }
            if std::mem::replace(&mut defined[out.index()], true) {
                return Err(format!("{}: v{} is assigned twice", p.name, out.0));
            }
        }
    }
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            check_var(v.index(), "an output")?;
            if !defined[v.index()] {
                return Err(format!("{}: output v{} is never defined", p.name, v.0));
            }
        }
    }
    if p.out_tree.leaves() != p.outputs.len() {
        return Err(format!("{}: the output structure does not match the outputs", p.name));
    }
    Ok(())
}
