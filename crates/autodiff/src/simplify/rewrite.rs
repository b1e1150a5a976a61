//! One forward pass of rewriting: each equation, with its operands already rewritten, is
//! folded, simplified by an identity, or looked up among the equations already emitted
//! (common subexpressions).

use ad_ir::prim::{Axes, Binary, Prim, Sel, Unary, F64};
use ad_ir::{scalar, Args, Atom, Builder, Program, Shape, Subst, Var};
use std::collections::HashMap;

struct Rw {
    b: Builder,
    /// For each emitted variable: the value it holds everywhere, if uniform (`zeros`,
    /// `full`), and the equation that computed it.
    uniform: Vec<Option<f64>>,
    def: Vec<u32>,
    /// Common subexpressions: equations by the hash of (primitive, operands).
    /// The last equation emitted with each hash; `chain[i]` is the one before equation `i`
    /// with the same hash (a linked list per hash, without an allocation per equation).
    cse: Table,
    chain: Vec<u32>,
    /// The inputs, which are the first variables emitted.
    inputs: Vec<Var>,
    /// The span of the equation being rewritten, for the equations a rewrite adds.
    span: ad_syntax::Span,
    /// Whether a rule emitted an equation without simplifying it (a helper it builds the
    /// rewritten equation from), or an equation was rewritten more times than the pass
    /// follows: then another pass may simplify further. Otherwise every equation was
    /// simplified with its operands in their final form, and the pass is a fixed point.
    unsettled: bool,
}

enum Out {
    /// The result is this existing atom.
    Same(Atom),
    /// Emit this equation instead (it differs from the one given).
    Emit(Prim, Args),
    /// Emit the equation as given.
    Keep(Args),
}

const NONE: u32 = u32::MAX;

fn key_hash(prim: &Prim, args: &[Atom]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = WordHasher(0);
    prim.hash(&mut h);
    args.hash(&mut h);
    h.finish()
}

/// A fast hasher for the common-subexpression keys, in the manner of rustc's FxHasher: each
/// word is mixed in by a rotation, an exclusive or and a multiplication. The keys are not
/// chosen by an adversary (they are our own equations), and the standard library's SipHash
/// was a tenth of the time of simplifying a large derivative.
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0; 8];
            b.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, w: u8) {
        self.write_u64(u64::from(w));
    }

    fn write_u32(&mut self, w: u32) {
        self.write_u64(u64::from(w));
    }

    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The table of keys that are hashes already: a key is its own hash. Keys are the low 32
/// bits of the hash (equal keys are confirmed by comparing the equations along `chain`, so
/// a shorter key only makes chains a little longer), which halves the table: it has a slot
/// per equation of the program. The table places a key by its low bits and tells keys of one
/// group apart by its top seven, so the 32 bits are repeated in the upper half.
#[derive(Default)]
struct KeyIsHash(u64);

impl std::hash::Hasher for KeyIsHash {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, w: u32) {
        self.0 = u64::from(w) << 32 | u64::from(w);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Table = HashMap<u32, u32, std::hash::BuildHasherDefault<KeyIsHash>>;

/// One pass of rewriting, and whether it settled: when it did, another pass would change
/// nothing (see `Rw::unsettled`). With `live`, only the equations it marks are rewritten
/// (the others are dead: no result needs them).
pub fn rewrite(p: &Program, live: Option<&[bool]>) -> (Program, bool) {
    let mut rw = Rw {
        b: Builder { vars: Vec::with_capacity(p.vars.len()), eqns: Vec::with_capacity(p.eqns.len()) },
        uniform: Vec::with_capacity(p.vars.len()),
        def: Vec::with_capacity(p.vars.len()),
        cse: Table::with_capacity_and_hasher(p.eqns.len(), Default::default()),
        chain: Vec::with_capacity(p.eqns.len()),
        inputs: Vec::new(),
        span: p.span,
        unsettled: false,
    };
    let mut map = Subst::new(p);
    for v in &p.inputs {
        let info = &p.vars[v.index()];
        let nv = rw.b.new_var(info.shape, info.name.clone());
        rw.uniform.push(None);
        rw.def.push(NONE);
        rw.inputs.push(nv);
        map.set(*v, Atom::Var(nv));
    }
    for (i, e) in p.eqns.iter().enumerate() {
        if live.is_some_and(|l| !l[i]) {
            continue;
        }
        let args = ad_ir::args_of(e.args.iter().map(|a| map.get(*a)));
        if matches!(
            e.prim,
            Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_)
        ) {
            // A loop or `if` is kept as it is (`simplify` has simplified its body or branches), with its operands
            // rewritten.
            let outs = rw.b.copy_eqn(p, e, args);
            rw.chain.push(NONE);
            for (v, o) in e.outs().zip(outs) {
                rw.uniform.push(None);
                rw.def.push(rw.b.eqns.len() as u32 - 1);
                map.set(v, Atom::Var(o));
            }
            continue;
        }
        let info = &p.vars[e.out.index()];
        let mut prim = std::borrow::Cow::Borrowed(&e.prim);
        rw.span = e.span;
        let mut r = rw.simplify(&prim, args, info.shape);
        // A rewritten equation is simplified again until it settles (each rewrite makes it
        // smaller or cheaper, so this stops).
        for _ in 0..4 {
            match r {
                Out::Emit(p2, a2) => {
                    prim = std::borrow::Cow::Owned(p2);
                    r = rw.simplify(&prim, a2, info.shape);
                }
                _ => break,
            }
        }
        if matches!(r, Out::Emit(..)) {
            rw.unsettled = true;
        }
        let atom = match r {
            Out::Same(a) => a,
            Out::Emit(p2, a2) => rw.emit(p2, a2, info.shape, e.span),
            Out::Keep(a2) => rw.emit(prim.into_owned(), a2, info.shape, e.span),
        };
        if let (Atom::Var(nv), Some(name)) = (atom, &info.name) {
            let slot = &mut rw.b.vars[nv.index()].name;
            if slot.is_none() && nv.index() >= rw.inputs.len() {
                *slot = Some(name.clone());
            }
        }
        map.set(e.out, atom);
    }
    let outputs = p.outputs.iter().map(|a| map.get(*a)).collect();
    let settled = !rw.unsettled;
    (p.rebuilt(rw.b.vars, rw.inputs, rw.b.eqns, outputs), settled)
}

impl Rw {
    fn shape(&self, a: Atom) -> Shape {
        self.b.shape(a)
    }

    fn constant(&self, a: Atom) -> Option<f64> {
        match a {
            Atom::Lit(x) => Some(x),
            Atom::Var(v) => self.uniform[v.index()],
        }
    }

    fn is(&self, a: Atom, x: f64) -> bool {
        self.constant(a) == Some(x)
    }

    /// Whether `a` is known to hold only finite numbers.
    fn finite(&self, a: Atom) -> bool {
        self.constant(a).is_some_and(f64::is_finite)
    }

    /// The equation that computed `a`, as (primitive, operands).
    fn def_of(&self, a: Atom) -> Option<(&Prim, &[Atom])> {
        let i = self.def[a.var()?.index()];
        if i == NONE {
            return None;
        }
        let e = &self.b.eqns[i as usize];
        Some((&e.prim, &e.args))
    }

    fn emit(&mut self, prim: Prim, args: Args, shape: Shape, span: ad_syntax::Span) -> Atom {
        if let Prim::Full(s, v) = &prim {
            if s.is_scalar() {
                return Atom::Lit(v.0);
            }
        }
        // The low half of the hash is the key (see `KeyIsHash`).
        let h = key_hash(&prim, &args) as u32;
        let mut i = self.cse.get(&h).copied().unwrap_or(NONE);
        while i != NONE {
            let e = &self.b.eqns[i as usize];
            if e.prim == prim && e.args == args {
                return Atom::Var(e.out);
            }
            i = self.chain[i as usize];
        }
        let uniform = if let Prim::Full(_, x) = &prim { Some(x.0) } else { None };
        let v = self.b.push(prim, args, shape, span);
        let i = self.b.eqns.len() - 1;
        self.uniform.push(uniform);
        self.def.push(i as u32);
        let previous = self.cse.insert(h, i as u32).unwrap_or(NONE);
        self.chain.push(previous);
        Atom::Var(v)
    }

    /// A uniform array of shape `s`.
    fn full(&self, s: Shape, x: f64) -> Out {
        if s.is_scalar() {
            Out::Same(Atom::Lit(x))
        } else {
            Out::Emit(Prim::Full(s, F64(x)), smallvec::smallvec![])
        }
    }

    /// `a` as an array of shape `s` (broadcast if needed).
    fn like(&mut self, a: Atom, s: Shape) -> Out {
        if self.shape(a) == s {
            return Out::Same(a);
        }
        if let Some(x) = self.constant(a) {
            return self.full(s, x);
        }
        Out::Emit(Prim::BroadcastTo(s), smallvec::smallvec![a])
    }

    /// `pad(a, w) ± pad(b, w)` is `pad(a ± b, w)`, and `sum(a) ± sum(b)` is `sum(a ± b)`,
    /// when `a` and `b` have one shape: one structural operation instead of two.
    fn fuse_linear(&mut self, op: Binary, x: Atom, y: Atom) -> Option<Out> {
        let (px, ax) = self.def_of(x).and_then(|(p, a)| Some((p.clone(), *a.first()?)))?;
        let (py, ay) = self.def_of(y).and_then(|(p, a)| Some((p.clone(), *a.first()?)))?;
        let same_prim = match (&px, &py) {
            (Prim::Pad(a), Prim::Pad(b)) => a == b,
            (Prim::Sum(a), Prim::Sum(b)) => a == b,
            _ => false,
        };
        let shape = self.shape(ax);
        if !same_prim || shape != self.shape(ay) {
            return None;
        }
        self.unsettled = true;
        let inner = self.emit(Prim::Binary(op), smallvec::smallvec![ax, ay], shape, ad_syntax::Span::DUMMY);
        Some(Out::Emit(px, smallvec::smallvec![inner]))
    }

    /// `c` with a part cleared, plus zeros with that part of `c` put back, is `c`: the
    /// cotangent of `x[i] += v` before this rule.
    fn split_part(&self, x: Atom, y: Atom) -> Option<Atom> {
        let (Prim::DynUpdate(sel), [c, zero, at @ ..]) = self.def_of(x)? else { return None };
        let (Prim::DynUpdate(sel2), [base, part, at2 @ ..]) = self.def_of(y)? else { return None };
        let (Prim::DynIndex(sel3), [c3, at3 @ ..]) = self.def_of(*part)? else { return None };
        let same = sel == sel2 && sel == sel3 && at == at2 && at == at3 && c == c3;
        (same && self.is(*zero, 0.0) && self.is(*base, 0.0)).then_some(*c)
    }

    /// `acc + z` where `z` is zeros with a part `v` put in (`z[i] = v`, the cotangent of
    /// `x[i]`) is `acc` with `v` added to that part: `acc[i] += v`. In a loop that sums
    /// the cotangents of the rows it reads, this costs the part per iteration, not the
    /// whole array (the update is in place when `acc` dies there).
    fn scatter_add(&mut self, acc: Atom, z: Atom, out: Shape) -> Option<Out> {
        let (Prim::DynUpdate(sel), [zero, v, at @ ..]) = self.def_of(z)? else { return None };
        if !self.is(*zero, 0.0) || self.shape(acc) != out || self.shape(z) != out {
            return None;
        }
        let (sel, v, at): (_, Atom, Vec<Atom>) = (sel.clone(), *v, at.to_vec());
        let part_shape = self.shape(v);
        let mut index_args: Args = smallvec::smallvec![acc];
        index_args.extend(at.iter().copied());
        self.unsettled = true;
        let part = self.emit(Prim::DynIndex(sel.clone()), index_args, part_shape, self.span);
        let sum = self.emit(Prim::Binary(Binary::Add), smallvec::smallvec![part, v], part_shape, self.span);
        let mut args: Args = smallvec::smallvec![acc, sum];
        args.extend(at);
        Some(Out::Emit(Prim::DynUpdate(sel), args))
    }

    /// For `y = (-a) * b` or `a * (-b)`: the product `a * b` without the sign, so that the
    /// caller (a negation, `+` or `-`) can absorb the sign: `x - (-a) * b` is `x + a * b`.
    fn unsigned_product(&mut self, y: Atom) -> Option<Atom> {
        let (Prim::Binary(Binary::Mul), inner) = self.def_of(y)? else { return None };
        let (p, q) = (inner[0], inner[1]);
        let neg = |rw: &Self, a: Atom| match rw.def_of(a) {
            Some((Prim::Unary(Unary::Neg), n)) => Some(n[0]),
            _ => None,
        };
        let args = match (neg(self, p), neg(self, q)) {
            (Some(a), None) => [a, q],
            (None, Some(b)) => [p, b],
            _ => return None,
        };
        let shape = self.shape(y);
        self.unsettled = true;
        Some(self.emit(
            Prim::Binary(Binary::Mul),
            smallvec::smallvec![args[0], args[1]],
            shape,
            ad_syntax::Span::DUMMY,
        ))
    }

    fn simplify(&mut self, prim: &Prim, mut args: Args, out: Shape) -> Out {
        use Binary::*;
        // Fold elementwise operations on uniform operands.
        if prim.is_elementwise() && *prim != Prim::StopGradient {
            let consts: Option<smallvec::SmallVec<[f64; 3]>> =
                args.iter().map(|a| self.constant(*a)).collect();
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
                let inner = match self.def_of(args[i]) {
                    Some((Prim::BroadcastTo(_), inner)) => Some(inner[0]),
                    _ => None,
                };
                if let Some(inner) = inner {
                    let mut trial = args.clone();
                    trial[i] = inner;
                    let shapes: Vec<Shape> = trial.iter().map(|a| self.shape(*a)).collect();
                    if prim.infer(&shapes) == Ok(out) {
                        args = trial;
                    }
                }
            }
        }
        match prim {
            Prim::Unary(Unary::Neg) => match self.def_of(args[0]) {
                Some((Prim::Unary(Unary::Neg), inner)) => return Out::Same(inner[0]),
                // -(a * c) = a * (-c) for a literal c, and -((-a) * b) = a * b.
                Some((Prim::Binary(Mul), inner)) => {
                    if let Atom::Lit(c) = inner[1] {
                        return Out::Emit(Prim::Binary(Mul), smallvec::smallvec![inner[0], Atom::Lit(-c)]);
                    }
                    if let Atom::Lit(c) = inner[0] {
                        return Out::Emit(Prim::Binary(Mul), smallvec::smallvec![Atom::Lit(-c), inner[1]]);
                    }
                    if let Some(m) = self.unsigned_product(args[0]) {
                        return Out::Same(m);
                    }
                }
                _ => {}
            },
            Prim::Binary(b) => {
                let (x, y) = (args[0], args[1]);
                match b {
                    Add => {
                        if self.is(x, 0.0) {
                            return self.like(y, out);
                        }
                        if self.is(y, 0.0) {
                            return self.like(x, out);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(y) {
                            return Out::Emit(Prim::Binary(Sub), smallvec::smallvec![x, n[0]]);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(x) {
                            return Out::Emit(Prim::Binary(Sub), smallvec::smallvec![y, n[0]]);
                        }
                        if let Some(m) = self.unsigned_product(y) {
                            return Out::Emit(Prim::Binary(Sub), smallvec::smallvec![x, m]);
                        }
                        if let Some(m) = self.unsigned_product(x) {
                            return Out::Emit(Prim::Binary(Sub), smallvec::smallvec![y, m]);
                        }
                        if let Some(r) = self.fuse_linear(Add, x, y) {
                            return r;
                        }
                        if let Some(c) = self.split_part(x, y).or_else(|| self.split_part(y, x)) {
                            return Out::Same(c);
                        }
                        if let Some(r) = self.scatter_add(x, y, out).or_else(|| self.scatter_add(y, x, out)) {
                            return r;
                        }
                    }
                    Sub => {
                        if self.is(y, 0.0) {
                            return self.like(x, out);
                        }
                        if self.is(x, 0.0) && self.shape(y) == out {
                            return Out::Emit(Prim::Unary(Unary::Neg), smallvec::smallvec![y]);
                        }
                        if let Some((Prim::Unary(Unary::Neg), n)) = self.def_of(y) {
                            return Out::Emit(Prim::Binary(Add), smallvec::smallvec![x, n[0]]);
                        }
                        if let Some(m) = self.unsigned_product(y) {
                            return Out::Emit(Prim::Binary(Add), smallvec::smallvec![x, m]);
                        }
                        if let Some(r) = self.fuse_linear(Sub, x, y) {
                            return r;
                        }
                    }
                    Mul | SafeMul => {
                        // `0 * a` is 0 only when `a` is finite (IEEE: 0 · ∞ = NaN), or when
                        // the zero is strong; folding it otherwise would make a derivative
                        // depend on which mode computed it.
                        let zero_times =
                            |z: Atom, a: Atom| self.is(z, 0.0) && (*b == SafeMul || self.finite(a));
                        if zero_times(x, y) || zero_times(y, x) {
                            return self.full(out, 0.0);
                        }
                        if self.is(y, 1.0) {
                            return self.like(x, out);
                        }
                        if self.is(x, 1.0) && (*b == Mul || self.shape(y) == out) {
                            return self.like(y, out);
                        }
                        if *b == Mul {
                            // (-a) * c = a * (-c) for a literal c.
                            for (n, c) in [(x, y), (y, x)] {
                                if let (Some((Prim::Unary(Unary::Neg), inner)), Atom::Lit(k)) =
                                    (self.def_of(n), c)
                                {
                                    return Out::Emit(
                                        Prim::Binary(Mul),
                                        smallvec::smallvec![inner[0], Atom::Lit(-k)],
                                    );
                                }
                            }
                            if self.is(y, -1.0) && self.shape(x) == out {
                                return Out::Emit(Prim::Unary(Unary::Neg), smallvec::smallvec![x]);
                            }
                            if self.is(x, -1.0) && self.shape(y) == out {
                                return Out::Emit(Prim::Unary(Unary::Neg), smallvec::smallvec![y]);
                            }
                        }
                    }
                    Div => {
                        // 0 / 0 is NaN: fold `0 / y` only for a known nonzero `y`.
                        if self.is(x, 0.0) && self.constant(y).is_some_and(|c| c != 0.0 && !c.is_nan()) {
                            return self.full(out, 0.0);
                        }
                        if self.is(y, 1.0) {
                            return self.like(x, out);
                        }
                    }
                    Pow => {
                        if self.is(y, 1.0) {
                            return self.like(x, out);
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
                    return self.like(args[1], out);
                }
                match self.constant(args[0]) {
                    Some(c) if c != 0.0 => return self.like(args[1], out),
                    Some(_) => return self.like(args[2], out),
                    None => {}
                }
            }
            // As for `*`: a zero factor gives zeros when the other is known finite or the
            // zeros are strong.
            Prim::MatMul | Prim::SafeMatMul => {
                let strong = *prim == Prim::SafeMatMul;
                let zero_times = |z: Atom, a: Atom| self.is(z, 0.0) && (strong || self.finite(a));
                if zero_times(args[0], args[1]) || zero_times(args[1], args[0]) {
                    return self.full(out, 0.0);
                }
            }
            Prim::Solve | Prim::SafeSolve
                if self.is(args[1], 0.0) && (*prim == Prim::SafeSolve || self.finite(args[0])) =>
            {
                return self.full(out, 0.0);
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
                    let lead = xs.rank() - out.rank();
                    if xs.dims()[lead..] == *out.dims() {
                        let axes: Vec<usize> = (0..lead).collect();
                        return Out::Emit(Prim::Sum(Axes::of(&axes)), smallvec::smallvec![x]);
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
                    return Out::Emit(prim.clone(), smallvec::smallvec![inner[0]]);
                }
                // Reshaping a broadcast scalar is broadcasting it to the new shape.
                if let (Prim::Reshape(_), Some((Prim::BroadcastTo(_), inner))) = (prim, self.def_of(x)) {
                    if self.shape(inner[0]).is_scalar() {
                        return Out::Emit(Prim::BroadcastTo(out), smallvec::smallvec![inner[0]]);
                    }
                }
                // Summing axes down to size 1 and reshaping them away is summing them
                // (`reshape(sum_to(x, (m, 1)), m)` is `sum(x, 1)`).
                if let (Prim::Reshape(_), Some((Prim::SumTo(t), inner))) = (prim, self.def_of(x)) {
                    let xs = self.shape(inner[0]);
                    if t.rank() == xs.rank() {
                        let reduced: Vec<usize> =
                            (0..xs.rank()).filter(|&i| t.dim(i) == 1 && xs.dim(i) != 1).collect();
                        let axes = Axes::of(&reduced);
                        if axes.reduce(xs) == out {
                            return Out::Emit(Prim::Sum(axes), smallvec::smallvec![inner[0]]);
                        }
                    }
                }
                if let (Prim::BroadcastTo(_), Some((Prim::BroadcastTo(_), inner))) = (prim, self.def_of(x)) {
                    return Out::Emit(prim.clone(), smallvec::smallvec![inner[0]]);
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
                // Swapping two axes of length 1 changes nothing.
                let xs = self.shape(x);
                let r = xs.rank();
                if xs.dim(r - 1) == 1 && xs.dim(r - 2) == 1 {
                    return Out::Same(x);
                }
            }
            Prim::Permute(perm) => {
                let x = args[0];
                if perm.iter().enumerate().all(|(i, p)| i == *p) {
                    return Out::Same(x);
                }
                // A permutation that keeps the order of the axes longer than 1 moves no data.
                let xs = self.shape(x);
                let moved: Vec<usize> = perm.iter().copied().filter(|&p| xs.dim(p) != 1).collect();
                if moved.windows(2).all(|w| w[0] < w[1]) {
                    return Out::Emit(Prim::Reshape(out), smallvec::smallvec![x]);
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
            // Positions that are numbers (a range assigned at known bounds, then transposed):
            // a static index, which the planner batches and the printer writes as the
            // script would. Positions out of range stay, to be reported when it runs.
            Prim::DynIndex(sel) => {
                // The part just written is what was written.
                if let Some((Prim::DynUpdate(s2), [_, v, at @ ..])) = self.def_of(args[0]) {
                    if s2 == sel && at == &args[1..] {
                        return Out::Same(*v);
                    }
                }
                let xs = self.shape(args[0]);
                let mut sels = Vec::with_capacity(xs.rank());
                for (axis, (w, p)) in sel.0.iter().zip(&args[1..]).enumerate() {
                    let (Atom::Lit(p), len) = (*p, xs.dim(axis)) else { return Out::Keep(args) };
                    let i = if p < 0.0 && w.is_none() { p + len as f64 } else { p };
                    let fits = p == p.trunc() && i >= 0.0 && i + w.unwrap_or(1) as f64 <= len as f64;
                    if !fits {
                        return Out::Keep(args);
                    }
                    let i = i as usize;
                    sels.push(match w {
                        None => Sel::At(i),
                        Some(k) => Sel::Range(i, i + k),
                    });
                }
                sels.extend((sel.len()..xs.rank()).map(|a| Sel::Range(0, xs.dim(a))));
                return Out::Emit(Prim::Index(sels), smallvec::smallvec![args[0]]);
            }
            // A part written twice keeps the second value.
            Prim::DynUpdate(sel) => {
                if let Some((Prim::DynUpdate(s2), [c, _, at @ ..])) = self.def_of(args[0]) {
                    if s2 == sel && at == &args[2..] {
                        let mut a: Args = smallvec::smallvec![*c, args[1]];
                        a.extend(args[2..].iter().copied());
                        return Out::Emit(prim.clone(), a);
                    }
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
        Out::Keep(args)
    }
}
