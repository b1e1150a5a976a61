//! Derivatives and function values: `grad`, `value_and_grad`, `jvp`, `vjp`, `hvp`,
//! `hessian` and the Jacobians of functions asked for by parameter types and result shape,
//! nested in each other.

use super::*;

impl Gen<'_> {
    /// A derivative whose value has shape `s`.
    pub(super) fn transform(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        let arr = |s: &Shape| Ty::Arr(s.clone());
        match self.rng.below(11) {
            0 | 1 => {
                let f = self.func(sc, &[arr(s)], &vec![], d);
                let x = self.expr(sc, s, d);
                Some(format!("grad({f})({x})"))
            }
            2 => {
                let t = self.shape();
                let f = self.func(sc, &[arr(&t), arr(s)], &vec![], d);
                let (y, x) = (self.expr(sc, &t, d), self.expr(sc, s, d));
                Some(format!("grad({f}, 1)({y}, {x})"))
            }
            3 => {
                let t = self.shape();
                let f = self.func(sc, &[Ty::Tuple(vec![s.clone(), t.clone()])], &vec![], d);
                let (x, y) = (self.expr(sc, s, d), self.expr(sc, &t, d));
                Some(format!("grad({f})(({x}, {y}))[0]"))
            }
            4 => {
                if s.is_empty() && self.rng.chance(50) {
                    let t = self.shape();
                    let f = self.func(sc, &[arr(&t)], &vec![], d);
                    let x = self.expr(sc, &t, d);
                    Some(format!("value_and_grad({f})({x})[0]"))
                } else {
                    let f = self.func(sc, &[arr(s)], &vec![], d);
                    let x = self.expr(sc, s, d);
                    Some(format!("value_and_grad({f})({x})[1]"))
                }
            }
            5 => {
                let t = self.shape();
                let f = self.func(sc, &[arr(&t)], s, d);
                let (x, dx) = (self.expr(sc, &t, d), self.expr(sc, &t, d));
                Some(format!("jvp({f}, {x}, {dx})[{}]", self.rng.below(2)))
            }
            6 => {
                if self.rng.chance(50) {
                    let u = self.shape();
                    let f = self.func(sc, &[arr(s)], &u, d);
                    let (x, ct) = (self.expr(sc, s, d), self.expr(sc, &u, d));
                    Some(format!("vjp({f}, {x}, {ct})[1]"))
                } else {
                    let t = self.shape();
                    let f = self.func(sc, &[arr(&t)], s, d);
                    let (x, ct) = (self.expr(sc, &t, d), self.expr(sc, s, d));
                    Some(format!("vjp({f}, {x}, {ct})[0]"))
                }
            }
            7 => {
                let f = self.func(sc, &[arr(s)], &vec![], d);
                let (x, v) = (self.expr(sc, s, d), self.expr(sc, s, d));
                Some(format!("hvp({f}, {x}, {v})"))
            }
            8 => {
                let t = self.hessian_arg(s)?;
                let f = self.func(sc, &[arr(&t)], &vec![], d);
                let x = self.expr(sc, &t, d);
                Some(format!("hessian({f})({x})"))
            }
            _ => {
                let (t, u) = self.jacobian_arg(s)?;
                let f = self.func(sc, &[arr(&t)], &u, d);
                let x = self.expr(sc, &t, d);
                Some(format!("{}({f})({x})", self.rng.pick(JACOBIANS)))
            }
        }
    }

    /// An argument shape whose Hessian has shape `s`.
    pub(super) fn hessian_arg(&mut self, s: &Shape) -> Option<Shape> {
        match s.as_slice() {
            [] => Some(vec![]),
            [n, m] if n == m => {
                let mut options = vec![vec![*n]];
                for a in 1..=*n {
                    if a > 1 && a < *n && divides(a, *n) {
                        options.push(vec![a, n / a]);
                    }
                }
                Some(self.rng.pick(&options).clone())
            }
            _ => None,
        }
    }

    /// An argument shape and a result shape whose Jacobian has shape `s`.
    pub(super) fn jacobian_arg(&mut self, s: &Shape) -> Option<(Shape, Shape)> {
        let mut args: Vec<Shape> = vec![vec![], s.clone()];
        if let Some(&last) = s.last() {
            args.push(vec![last]);
            for a in 2..last {
                if divides(a, last) {
                    args.push(vec![a, last / a]);
                }
            }
        }
        let mut pairs = Vec::new();
        for t in &args {
            let mut outs: Vec<Shape> = vec![vec![], s.clone()];
            if let Some(&first) = s.first() {
                outs.push(vec![first]);
                outs.push(vec![first, 1]);
            }
            for u in outs {
                if jacobian_shape(&u, t) == *s {
                    pairs.push((t.clone(), u));
                }
            }
        }
        if pairs.is_empty() {
            None
        } else {
            Some(self.rng.pick(&pairs).clone())
        }
    }

    /// A function value taking `params` and returning an array of shape `result`: a lambda,
    /// a `def`, a builtin, or a transform of another function.
    pub(super) fn func(&mut self, sc: &Scope, params: &[Ty], result: &Shape, d: u32) -> String {
        let mut options: Vec<String> = Vec::new();
        for def in &self.defs {
            let ps: Vec<Ty> = def.params.iter().map(|(_, t)| t.clone()).collect();
            if ps == params && def.result == Ty::Arr(result.clone()) {
                options.push(def.name.clone());
            }
        }
        if let Some((name, ps, r)) = &sc.current {
            if ps == params && *r == Ty::Arr(result.clone()) && self.rng.chance(3) {
                // Recursion through a transform (`def f(x) = grad(f)(x)`): an error to report.
                return name.clone();
            }
        }
        let single = match params {
            [Ty::Arr(t)] => Some(t.clone()),
            _ => None,
        };
        if let Some(t) = &single {
            if t == result {
                options.push(self.rng.pick(UNARY).to_string());
            }
            if result.is_empty() {
                options.push(self.rng.pick(TO_SCALAR).to_string());
            }
        }
        if d > 0 && self.nodes > 0 {
            if let Some(t) = &single {
                let t = t.clone();
                match self.rng.below(4) {
                    0 if t == *result => {
                        self.nodes -= 1;
                        let g = self.func(sc, params, &vec![], d - 1);
                        return format!("grad({g})");
                    }
                    1 if self.hessian_arg(result).as_ref() == Some(&t) => {
                        self.nodes -= 1;
                        let g = self.func(sc, params, &vec![], d - 1);
                        return format!("hessian({g})");
                    }
                    2 => {
                        if let Some(u) = self.jacobian_result(&t, result) {
                            self.nodes -= 1;
                            let g = self.func(sc, params, &u, d - 1);
                            return format!("{}({g})", self.rng.pick(JACOBIANS));
                        }
                    }
                    _ => {}
                }
            }
            if params.len() == 2 && params[1] == Ty::Arr(result.clone()) && self.rng.chance(20) {
                self.nodes -= 1;
                let g = self.func(sc, params, &vec![], d - 1);
                return format!("grad({g}, 1)");
            }
        }
        if !options.is_empty() && self.rng.chance(35) {
            return self.rng.pick(&options).clone();
        }
        self.lambda(sc, params, result, d)
    }

    /// A result shape `u` such that the Jacobian of a function from `t` to `u` is `s`.
    pub(super) fn jacobian_result(&mut self, t: &Shape, s: &Shape) -> Option<Shape> {
        let mut outs: Vec<Shape> = vec![vec![], s.clone()];
        if let Some(&first) = s.first() {
            outs.push(vec![first]);
        }
        let fits: Vec<Shape> = outs.into_iter().filter(|u| jacobian_shape(u, t) == *s).collect();
        if fits.is_empty() {
            None
        } else {
            Some(self.rng.pick(&fits).clone())
        }
    }

    pub(super) fn lambda(&mut self, sc: &Scope, params: &[Ty], result: &Shape, d: u32) -> String {
        let names: Vec<(String, Ty)> = params.iter().map(|t| (self.name("a"), t.clone())).collect();
        let inner = sc.with(&names, true);
        let body = self.expr(&inner, result, d);
        let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        if list.len() == 1 && self.rng.chance(70) {
            format!("({} => {body})", list[0])
        } else {
            format!("(({}) => {body})", list.join(", "))
        }
    }
}
