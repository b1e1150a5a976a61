//! One forward pass of rewriting: each equation, with its operands already rewritten, is
//! folded, simplified by an identity, or looked up among the equations already emitted
//! (common subexpressions).

use ad_ir::prim::{Binary, Prim, Sel, Unary, F64};
use ad_ir::{scalar, Atom, Builder, Program, Shape, Var};
use std::collections::HashMap;

struct Rw {
    b: Builder,
    /// Variables known to hold the same value everywhere (`zeros`, `full`), by value.
    uniform: HashMap<Var, f64>,
    /// How each emitted variable was computed.
    def: HashMap<Var, (Prim, Vec<Atom>)>,
    cse: HashMap<(Prim, Vec<Atom>), Var>,
    inputs: Vec<Var>,
}

enum Out {
    /// The result is this existing atom.
    Same(Atom),
    /// Emit this equation instead.
    Emit(Prim, Vec<Atom>),
}

pub fn rewrite(p: &Program) -> Program {
    let mut rw = Rw {
        b: Builder::new(),
        uniform: HashMap::new(),
        def: HashMap::new(),
        cse: HashMap::new(),
        inputs: Vec::new(),
    };
    let mut map: Vec<Option<Atom>> = vec![None; p.vars.len()];
    for v in &p.inputs {
        let info = &p.vars[v.index()];
        let nv = rw.b.new_var(info.shape, info.name.clone());
        rw.inputs.push(nv);
        map[v.index()] = Some(Atom::Var(nv));
    }
    let get = |map: &Vec<Option<Atom>>, a: &Atom| match a {
        Atom::Var(v) => {
            map[v.index()].unwrap_or_else(|| panic!("internal error: {v:?} used before definition"))
        }
        lit => *lit,
    };
    for e in &p.eqns {
        let args: Vec<Atom> = e.args.iter().map(|a| get(&map, a)).collect();
        let info = &p.vars[e.out.index()];
        let mut r = rw.simplify(&e.prim, args, info.shape, e.span);
        // Results are simplified again until they settle (each step shrinks the equation).
        for _ in 0..4 {
            match r {
                Out::Emit(prim, args) => {
                    if let Some(a) = rw.try_again(&prim, &args, info.shape, e.span) {
                        r = a;
                    } else {
                        r = Out::Emit(prim, args);
                        break;
                    }
                }
                Out::Same(_) => break,
            }
        }
        let atom = match r {
            Out::Same(a) => a,
            Out::Emit(prim, args) => rw.emit(prim, args, info.shape, e.span),
        };
        if let (Atom::Var(nv), Some(name)) = (atom, &info.name) {
            let slot = &mut rw.b.vars[nv.index()].name;
            if slot.is_none() && !rw.inputs.contains(&nv) {
                *slot = Some(name.clone());
            }
        }
        map[e.out.index()] = Some(atom);
    }
    let outputs = p.outputs.iter().map(|a| get(&map, a)).collect();
    Program { vars: rw.b.vars, inputs: rw.inputs, eqns: rw.b.eqns, outputs, ..p.clone() }
}

impl Rw {
    fn shape(&self, a: Atom) -> Shape {
        self.b.shape(a)
    }

    fn constant(&self, a: Atom) -> Option<f64> {
        match a {
            Atom::Lit(x) => Some(x),
            Atom::Var(v) => self.uniform.get(&v).copied(),
        }
    }

    fn is(&self, a: Atom, x: f64) -> bool {
        self.constant(a) == Some(x)
    }

    fn def_of(&self, a: Atom) -> Option<&(Prim, Vec<Atom>)> {
        a.var().and_then(|v| self.def.get(&v))
    }

    fn emit(&mut self, prim: Prim, args: Vec<Atom>, shape: Shape, span: ad_syntax::Span) -> Atom {
        if let Prim::Full(s, v) = &prim {
            if s.is_scalar() {
                return Atom::Lit(v.0);
            }
        }
        let key = (prim, args);
        if let Some(v) = self.cse.get(&key) {
            return Atom::Var(*v);
        }
        let (prim, args) = key;
        let v = self.b.push(prim.clone(), args.clone(), shape, span);
        if let Prim::Full(_, x) = &prim {
            self.uniform.insert(v, x.0);
        }
        self.def.insert(v, (prim.clone(), args.clone()));
        self.cse.insert((prim, args), v);
        Atom::Var(v)
    }

    /// A uniform array of shape `s`.
    fn full(&self, s: Shape, x: f64) -> Out {
        if s.is_scalar() {
            Out::Same(Atom::Lit(x))
        } else {
            Out::Emit(Prim::Full(s, F64(x)), vec![])
        }
    }

    /// `a` as an array of shape `s` (broadcast if needed).
    fn like(&mut self, a: Atom, s: Shape, span: ad_syntax::Span) -> Out {
        if self.shape(a) == s {
            return Out::Same(a);
        }
        if let Some(x) = self.constant(a) {
            return self.full(s, x);
        }
        let _ = span;
        Out::Emit(Prim::BroadcastTo(s), vec![a])
    }

    /// `pad(a, w) ± pad(b, w)` is `pad(a ± b, w)`, and `sum(a) ± sum(b)` is `sum(a ± b)`,
    /// when `a` and `b` have one shape: one structural operation instead of two.
    fn fuse_linear(&mut self, op: Binary, x: Atom, y: Atom) -> Option<Out> {
        let (dx, dy) = (self.def_of(x)?.clone(), self.def_of(y)?.clone());
        let same_prim = match (&dx.0, &dy.0) {
            (Prim::Pad(a), Prim::Pad(b)) => a == b,
            (Prim::Sum(a), Prim::Sum(b)) => a == b,
            _ => false,
        };
        if !same_prim || self.shape(dx.1[0]) != self.shape(dy.1[0]) {
            return None;
        }
        let inner = self.b.emit(Prim::Binary(op), vec![dx.1[0], dy.1[0]], ad_syntax::Span::DUMMY);
        Some(Out::Emit(dx.0.clone(), vec![inner]))
    }

    fn try_again(&mut self, prim: &Prim, args: &[Atom], out: Shape, span: ad_syntax::Span) -> Option<Out> {
        match self.simplify(prim, args.to_vec(), out, span) {
            Out::Emit(p2, a2) if p2 == *prim && a2 == args => None,
            r => Some(r),
        }
    }

    fn simplify(&mut self, prim: &Prim, mut args: Vec<Atom>, out: Shape, span: ad_syntax::Span) -> Out {
        use Binary::*;
        // Fold elementwise operations on uniform operands.
        if prim.is_elementwise() && *prim != Prim::StopGradient {
            let consts: Option<Vec<f64>> = args.iter().map(|a| self.constant(*a)).collect();
            if let Some(c) = consts {
                let v = match (prim, c.as_slice()) {
                    (Prim::Unary(u), [x]) => Some(scalar::unary(*u, *x)),
                    (Prim::Binary(b), [x, y]) => Some(scalar::binary(*b, *x, *y)),
                    (Prim::Where, [c, x, y]) => Some(if *c != 0.0 { *x } else { *y }),
                    _ => None,
                };
                if let Some(v) = v {
                    return self.full(out, v);
                }
            }
            // A uniform array or a broadcast feeding an elementwise operation is implicit in
            // the operation, as long as the result keeps its shape.
            for i in 0..args.len() {
                if let (Atom::Var(_), Some(c)) = (args[i], self.constant(args[i])) {
                    let mut trial = args.clone();
                    trial[i] = Atom::Lit(c);
                    let shapes: Vec<Shape> = trial.iter().map(|a| self.shape(*a)).collect();
                    if prim.infer(&shapes) == Ok(out) {
                        args = trial;
                        continue;
                    }
                }
                if let Some((Prim::BroadcastTo(_), inner)) = self.def_of(args[i]).cloned() {
                    let mut trial = args.clone();
                    trial[i] = inner[0];
                    let shapes: Vec<Shape> = trial.iter().map(|a| self.shape(*a)).collect();
                    if prim.infer(&shapes) == Ok(out) {
                        args = trial;
                    }
                }
            }
        }
        match prim {
            Prim::Unary(Unary::Neg) => match self.def_of(args[0]).cloned() {
                Some((Prim::Unary(Unary::Neg), inner)) => return Out::Same(inner[0]),
                // -(a * c) = a * (-c) for a literal c.
                Some((Prim::Binary(Mul), inner)) => {
                    if let Atom::Lit(c) = inner[1] {
                        return Out::Emit(Prim::Binary(Mul), vec![inner[0], Atom::Lit(-c)]);
                    }
                    if let Atom::Lit(c) = inner[0] {
                        return Out::Emit(Prim::Binary(Mul), vec![Atom::Lit(-c), inner[1]]);
                    }
                }
                _ => {}
            },
            Prim::Binary(b) => {
                let (x, y) = (args[0], args[1]);
                match b {
                    Add => {
                        if self.is(x, 0.0) {
                            return self.like(y, out, span);
                        }
                        if self.is(y, 0.0) {
                            return self.like(x, out, span);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(y) {
                            return Out::Emit(Prim::Binary(Sub), vec![x, n[0]]);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(x) {
                            return Out::Emit(Prim::Binary(Sub), vec![y, n[0]]);
                        }
                        if let Some(r) = self.fuse_linear(Add, x, y) {
                            return r;
                        }
                    }
                    Sub => {
                        if self.is(y, 0.0) {
                            return self.like(x, out, span);
                        }
                        if self.is(x, 0.0) && self.shape(y) == out {
                            return Out::Emit(Prim::Unary(Unary::Neg), vec![y]);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(y) {
                            return Out::Emit(Prim::Binary(Add), vec![x, n[0]]);
                        }
                        if let Some(r) = self.fuse_linear(Sub, x, y) {
                            return r;
                        }
                    }
                    Mul | SafeMul => {
                        if self.is(x, 0.0) || self.is(y, 0.0) {
                            return self.full(out, 0.0);
                        }
                        if self.is(y, 1.0) {
                            return self.like(x, out, span);
                        }
                        if self.is(x, 1.0) && (*b == Mul || self.shape(y) == out) {
                            return self.like(y, out, span);
                        }
                        if *b == Mul {
                            // (-a) * c = a * (-c) for a literal c.
                            for (n, c) in [(x, y), (y, x)] {
                                if let (Some((Prim::Unary(Unary::Neg), inner)), Atom::Lit(k)) =
                                    (self.def_of(n), c)
                                {
                                    return Out::Emit(Prim::Binary(Mul), vec![inner[0], Atom::Lit(-k)]);
                                }
                            }
                            if self.is(y, -1.0) && self.shape(x) == out {
                                return Out::Emit(Prim::Unary(Unary::Neg), vec![x]);
                            }
                            if self.is(x, -1.0) && self.shape(y) == out {
                                return Out::Emit(Prim::Unary(Unary::Neg), vec![y]);
                            }
                        }
                    }
                    Div => {
                        if self.is(x, 0.0) {
                            return self.full(out, 0.0);
                        }
                        if self.is(y, 1.0) {
                            return self.like(x, out, span);
                        }
                    }
                    Pow => {
                        if self.is(y, 1.0) {
                            return self.like(x, out, span);
                        }
                        if self.is(y, 0.0) {
                            return self.full(out, 1.0);
                        }
                    }
                    _ => {}
                }
            }
            Prim::Where => {
                if args[1] == args[2] {
                    return self.like(args[1], out, span);
                }
                match self.constant(args[0]) {
                    Some(c) if c != 0.0 => return self.like(args[1], out, span),
                    Some(_) => return self.like(args[2], out, span),
                    None => {}
                }
            }
            Prim::MatMul => {
                if self.is(args[0], 0.0) || self.is(args[1], 0.0) {
                    return self.full(out, 0.0);
                }
            }
            Prim::Solve => {
                if self.is(args[1], 0.0) {
                    return self.full(out, 0.0);
                }
            }
            Prim::Sum(_) | Prim::SumTo(_) => {
                let x = args[0];
                let xs = self.shape(x);
                if xs == out {
                    return Out::Same(x);
                }
                if let Some(c) = self.constant(x) {
                    let n = xs.size() / out.size().max(1);
                    return self.full(out, c * n as f64);
                }
                // `sum_to` that removes whole axes is a plain sum.
                if let Prim::SumTo(_) = prim {
                    if out.is_scalar() {
                        return Out::Emit(Prim::Sum(None), vec![x]);
                    }
                    if let ([_, n], [k]) = (xs.dims(), out.dims()) {
                        if n == k {
                            return Out::Emit(Prim::Sum(Some(0)), vec![x]);
                        }
                    }
                }
            }
            Prim::Reshape(_) | Prim::BroadcastTo(_) => {
                let x = args[0];
                if self.shape(x) == out {
                    return Out::Same(x);
                }
                if let Some(c) = self.constant(x) {
                    return self.full(out, c);
                }
                if let (Prim::Reshape(_), Some((Prim::Reshape(_), inner))) = (prim, self.def_of(x)) {
                    return Out::Emit(prim.clone(), vec![inner[0]]);
                }
                // Reshaping a broadcast scalar is broadcasting it to the new shape.
                if let (Prim::Reshape(_), Some((Prim::BroadcastTo(_), inner))) = (prim, self.def_of(x)) {
                    if self.shape(inner[0]).is_scalar() {
                        return Out::Emit(Prim::BroadcastTo(out), vec![inner[0]]);
                    }
                }
                // Summing a matrix's rows into a column and flattening it is `sum(x, 1)`.
                if let (Prim::Reshape(_), Some((Prim::SumTo(t), inner))) = (prim, self.def_of(x).cloned()) {
                    let xs = self.shape(inner[0]);
                    if let ([m, _], [tm, 1], [k]) = (xs.dims(), t.dims(), out.dims()) {
                        if m == tm && m == k {
                            return Out::Emit(Prim::Sum(Some(1)), vec![inner[0]]);
                        }
                    }
                    if let ([_, n], [1, tn], [k]) = (xs.dims(), t.dims(), out.dims()) {
                        if n == tn && n == k {
                            return Out::Emit(Prim::Sum(Some(0)), vec![inner[0]]);
                        }
                    }
                }
                if let (Prim::BroadcastTo(_), Some((Prim::BroadcastTo(_), inner))) = (prim, self.def_of(x)) {
                    return Out::Emit(prim.clone(), vec![inner[0]]);
                }
            }
            Prim::Transpose => {
                let x = args[0];
                if self.shape(x).rank() < 2 {
                    return Out::Same(x);
                }
                if let Some(c) = self.constant(x) {
                    return self.full(out, c);
                }
                if let Some((Prim::Transpose, inner)) = self.def_of(x) {
                    return Out::Same(inner[0]);
                }
            }
            Prim::Index(sels) => {
                let x = args[0];
                let s = self.shape(x);
                if sels.iter().zip(s.dims()).all(|(sel, d)| *sel == Sel::Range(0, *d)) {
                    return Out::Same(x);
                }
                if let Some(c) = self.constant(x) {
                    return self.full(out, c);
                }
            }
            Prim::Pad(widths) => {
                let x = args[0];
                if widths.iter().all(|w| *w == (0, 0)) {
                    return Out::Same(x);
                }
                if self.is(x, 0.0) {
                    return self.full(out, 0.0);
                }
            }
            Prim::Concat(_) | Prim::Stack => {
                if let Some(c) = args.first().and_then(|a| self.constant(*a)) {
                    if args.iter().all(|a| self.constant(*a) == Some(c)) {
                        return self.full(out, c);
                    }
                }
            }
            _ => {}
        }
        Out::Emit(prim.clone(), args)
    }
}
