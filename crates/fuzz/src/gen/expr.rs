//! Expressions of a requested shape: leaves, elementwise operations with broadcasting,
//! `where`, products, reductions, slices, structure, calls, lambdas and constant `if`s.

use super::*;

impl Gen<'_> {
    /// An expression whose value has shape `s`.
    pub(super) fn expr(&mut self, sc: &Scope, s: &Shape, depth: u32) -> String {
        if depth == 0 || self.nodes == 0 {
            return self.leaf(sc, s);
        }
        self.nodes -= 1;
        let d = depth - 1;
        let weights = [10, 10, 18, 5, 6, 3, 6, 6, 3, 3, 3, 2, 8, 3, 2, 16, 3];
        let choice = self.rng.weighted(&weights);
        let e = match choice {
            0 => None,
            1 => Some(self.unary(sc, s, d)),
            2 => Some(self.binary(sc, s, d)),
            3 => Some(self.where_(sc, s, d)),
            4 => self.matmul(sc, s, d),
            5 => Some(self.transpose(sc, s, d)),
            6 => self.reduce(sc, s, d),
            7 => self.slice(sc, s, d),
            8 => self.reshape(sc, s, d),
            9 => Some(self.broadcast_like(sc, s, d)),
            10 => self.concat(sc, s, d),
            11 => self.pad(sc, s, d),
            12 => self.call(sc, s, d),
            13 => Some(self.lambda_call(sc, s, d)),
            14 => Some(self.if_(sc, s, d)),
            15 => self.transform(sc, s, d),
            _ => Some(self.tuple_index(sc, s, d)),
        };
        match e {
            Some(e) => e,
            None => self.leaf(sc, s),
        }
    }

    /// A variable, a literal or an array creation of shape `s`.
    pub(super) fn leaf(&mut self, sc: &Scope, s: &Shape) -> String {
        let mut candidates: Vec<String> = Vec::new();
        for (name, ty) in sc.vars.iter().chain(&self.globals) {
            match ty {
                Ty::Arr(t) if t == s => candidates.push(name.clone()),
                Ty::Tuple(ts) => {
                    for (k, t) in ts.iter().enumerate() {
                        if t == s {
                            candidates.push(format!("{name}[{k}]"));
                        }
                    }
                }
                _ => {}
            }
        }
        if !candidates.is_empty() && self.rng.chance(60) {
            return self.rng.pick(&candidates).clone();
        }
        // Inside a function, a leaf often depends on a parameter even when no parameter has
        // the shape asked for: constant functions have trivial derivatives.
        if !sc.vars.is_empty() && self.rng.chance(55) {
            let mut locals: Vec<(String, Shape)> = Vec::new();
            for (name, ty) in &sc.vars {
                match ty {
                    Ty::Arr(t) => locals.push((name.clone(), t.clone())),
                    Ty::Tuple(ts) => {
                        locals.extend(ts.iter().enumerate().map(|(k, t)| (format!("{name}[{k}]"), t.clone())))
                    }
                }
            }
            let (v, t) = self.rng.pick(&locals).clone();
            return self.adapt(&v, &t, s);
        }
        match s.as_slice() {
            [] => self.number(),
            [n] if *n <= 5 && self.rng.chance(50) => {
                let items: Vec<String> = (0..*n).map(|_| self.number()).collect();
                format!("[{}]", items.join(", "))
            }
            [m, n] if m * n <= 9 && *m > 0 && *n > 0 && self.rng.chance(40) => {
                let rows: Vec<String> = (0..*m)
                    .map(|_| {
                        let items: Vec<String> = (0..*n).map(|_| self.number()).collect();
                        format!("[{}]", items.join(", "))
                    })
                    .collect();
                format!("[{}]", rows.join(", "))
            }
            _ => self.creation(sc, s),
        }
    }

    /// An expression of shape `s` computed from `v`, which has shape `t`.
    pub(super) fn adapt(&mut self, v: &str, t: &Shape, s: &Shape) -> String {
        let stext = tuple_text(s);
        if t == s {
            v.to_string()
        } else if s.is_empty() {
            let f = if size(t) == 0 { "sum" } else { self.rng.pick(&["sum", "mean", "amax", "norm", "sum"]) };
            format!("{f}({v})")
        } else if broadcasts_to(t, s) {
            if self.rng.chance(50) {
                format!("broadcast_to({v}, {stext})")
            } else {
                format!("({v} * ones({stext}))")
            }
        } else if size(t) == size(s) && self.rng.chance(60) {
            format!("reshape({v}, {stext})")
        } else if t.len() == 1 && s.len() == 1 && s[0] <= t[0] && self.rng.chance(60) {
            let m = s[0];
            if m > 0 && self.rng.chance(50) {
                format!("{v}[-{m}:]")
            } else {
                format!("{v}[:{m}]")
            }
        } else if self.rng.chance(25) {
            // `full` with a traced value: its derivative must flow through the fill value.
            format!("full({stext}, sum({v}))")
        } else {
            format!("(sum({v}) * ones({stext}))")
        }
    }

    pub(super) fn creation(&mut self, sc: &Scope, s: &Shape) -> String {
        let t = tuple_text(s);
        let random_ok = !sc.in_function || self.rng.below(200) == 0;
        match self.rng.below(8) {
            0 => format!("zeros({t})"),
            1 => format!("ones({t})"),
            2 => {
                let v = self.number();
                format!("full({t}, {v})")
            }
            3 if random_ok => format!("{}({t})", self.rng.pick(&["randn", "rand"])),
            4 if s.len() == 2 && s[0] == s[1] => format!("eye({})", s[0]),
            5 if s.len() == 1 => {
                if self.rng.chance(50) {
                    format!("arange({})", s[0])
                } else {
                    format!("linspace({}, {}, {})", self.number(), self.number(), s[0])
                }
            }
            6 if !s.is_empty() => format!("reshape(arange({}), {t})", size(s)),
            _ => {
                let v = self.number();
                format!("full({t}, {v})")
            }
        }
    }

    pub(super) fn unary(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let e = self.expr(sc, s, d);
        match self.rng.below(6) {
            0 => format!("(-{e})"),
            1 => format!("(!{e})"),
            2 => format!("stop_gradient({e})"),
            _ => format!("{}({e})", self.rng.pick(UNARY)),
        }
    }

    pub(super) fn binary(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let sa = self.sub_broadcast(s);
        let sb = self.complement(s, &sa);
        let (sa, sb) = if self.rng.chance(50) { (sa, sb) } else { (sb, sa) };
        let a = self.expr(sc, &sa, d);
        let b = self.expr(sc, &sb, d);
        match self.rng.below(12) {
            0 => format!("max({a}, {b})"),
            1 => format!("min({a}, {b})"),
            2 => format!("({a} {} {b})", self.rng.pick(COMPARISONS)),
            3 => format!("({a} {} {b})", self.rng.pick(&["&&", "||"])),
            4 => format!("{}({a}, {b})", self.rng.pick(&["add", "sub", "mul", "div", "pow"])),
            _ => format!("({a} {} {b})", self.rng.pick(BINARY_OPS)),
        }
    }

    /// `where` with a condition that is often narrower than the result (`[[1], [0]]`).
    pub(super) fn where_(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let sc_shape = self.sub_broadcast(s);
        // A literal cannot have an empty axis before a non-empty one (`[]` is `[0]`, never
        // `[0, 2]`), so empty conditions are computed.
        let cond = if size(&sc_shape) <= 6 && size(&sc_shape) > 0 && self.rng.chance(50) {
            self.zero_one_literal(&sc_shape)
        } else {
            let a = self.expr(sc, &sc_shape, d);
            let b = self.number();
            format!("({a} {} {b})", self.rng.pick(COMPARISONS))
        };
        let sa = self.sub_broadcast(s);
        let sb = self.complement(s, &broadcast(&sc_shape, &sa));
        let a = self.expr(sc, &sa, d);
        let b = self.expr(sc, &sb, d);
        format!("where({cond}, {a}, {b})")
    }

    pub(super) fn zero_one_literal(&mut self, s: &Shape) -> String {
        let mut bit = || if self.rng.chance(50) { "1" } else { "0" };
        match s.as_slice() {
            [] => bit().into(),
            [n] => format!("[{}]", (0..*n).map(|_| bit()).collect::<Vec<_>>().join(", ")),
            [m, n] => format!(
                "[{}]",
                (0..*m)
                    .map(|_| format!("[{}]", (0..*n).map(|_| bit()).collect::<Vec<_>>().join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "1".into(),
        }
    }

    pub(super) fn matmul(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        let k = self.dim();
        let (a, b) = match s.as_slice() {
            [] => (vec![k], vec![k]),
            [n] => {
                if self.rng.chance(50) {
                    (vec![*n, k], vec![k])
                } else {
                    (vec![k], vec![k, *n])
                }
            }
            [m, n] => (vec![*m, k], vec![k, *n]),
            _ => return None,
        };
        if !s.is_empty() && s[0] == s[s.len() - 1] && self.rng.chance(15) {
            // `solve` with a well-conditioned matrix most of the time.
            let n = s[0];
            let m = self.expr(sc, &vec![n, n], d);
            let rhs = self.expr(sc, s, d);
            return Some(format!("solve(eye({n}) * 3 + 0.1 * {m}, {rhs})"));
        }
        let x = self.expr(sc, &a, d);
        let y = self.expr(sc, &b, d);
        Some(match self.rng.below(4) {
            0 => format!("matmul({x}, {y})"),
            1 if a.len() == 1 && b.len() == 1 => format!("dot({x}, {y})"),
            _ => format!("({x} @ {y})"),
        })
    }

    pub(super) fn transpose(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let t: Shape = s.iter().rev().copied().collect();
        let e = self.expr(sc, &t, d);
        if self.rng.chance(50) {
            format!("transpose({e})")
        } else {
            format!("({e})'")
        }
    }

    pub(super) fn reduce(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        match s.as_slice() {
            [] => {
                let t = self.shape();
                let e = self.expr(sc, &t, d);
                Some(match self.rng.below(7) {
                    5 => {
                        let f = self.expr(sc, &t, d);
                        format!("mse({e}, {f})")
                    }
                    6 if t.len() == 1 && t[0] > 0 => {
                        let labels = self.zero_one_literal(&t);
                        format!("cross_entropy({e}, {labels})")
                    }
                    i => format!("{}({e})", TO_SCALAR[i % TO_SCALAR.len()]),
                })
            }
            [n] => {
                let k = self.dim();
                let (t, axis) = match self.rng.below(4) {
                    0 => (vec![k, *n], "0"),
                    1 => (vec![k, *n], "-2"),
                    2 => (vec![*n, k], "1"),
                    _ => (vec![*n, k], "-1"),
                };
                if self.rng.chance(25) {
                    let e = self.expr(sc, s, d);
                    return Some(format!("{}({e})", self.rng.pick(&["softmax", "log_softmax"])));
                }
                let e = self.expr(sc, &t, d);
                let f = self.rng.pick(&["sum", "amax", "mean", "logsumexp", "sum"]);
                Some(format!("{f}({e}, {axis})"))
            }
            [_, _] => {
                if self.rng.chance(50) {
                    let e = self.expr(sc, s, d);
                    let axis = self.rng.pick(&["0", "1", "-1"]);
                    Some(format!("{}({e}, {axis})", self.rng.pick(&["softmax", "log_softmax"])))
                } else {
                    // `sum_to` from a shape that `s` broadcasts to.
                    let big: Shape = s.iter().map(|&d| if d == 1 { self.dim() } else { d }).collect();
                    let e = self.expr(sc, &big, d);
                    Some(format!("sum_to({e}, {})", tuple_text(s)))
                }
            }
            _ => None,
        }
    }

    /// An index bound as written: sometimes negative (counting from the end).
    pub(super) fn bound(&mut self, i: usize, len: usize) -> String {
        if i < len && self.rng.chance(35) {
            format!("-{}", len - i)
        } else {
            i.to_string()
        }
    }

    /// `lo:hi` selecting `n` elements from `lo` of an axis of length `len`; a bound may be
    /// missing, negative, or (at the end) past the end, which slicing clips as NumPy does.
    pub(super) fn range_text(&mut self, lo: usize, n: usize, len: usize) -> String {
        let hi = lo + n;
        let from = if lo == 0 && self.rng.chance(40) { String::new() } else { self.bound(lo, len) };
        let to = if hi == len && self.rng.chance(40) {
            String::new()
        } else if hi == len && self.rng.chance(20) {
            (len + 5).to_string()
        } else {
            self.bound(hi, len)
        };
        format!("{from}:{to}")
    }

    pub(super) fn slice(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        match s.as_slice() {
            [] => {
                let k = self.rng.range(1, 4);
                if self.rng.chance(50) {
                    let e = self.expr(sc, &vec![k], d);
                    let i = self.rng.below(k);
                    let i = self.bound(i, k);
                    Some(format!("({e})[{i}]"))
                } else {
                    let m = self.rng.range(1, 3);
                    let e = self.expr(sc, &vec![m, k], d);
                    let (i, j) = (self.rng.below(m), self.rng.below(k));
                    Some(format!("({e})[{i}, -{}]", k - j))
                }
            }
            [n] => {
                let (a, b) = (self.rng.range(0, 2), self.rng.range(0, 2));
                let len = n + a + b;
                match self.rng.below(4) {
                    0 => {
                        let k = self.rng.range(1, 3);
                        let e = self.expr(sc, &vec![k, *n], d);
                        let i = self.rng.below(k);
                        Some(format!("({e})[{i}]"))
                    }
                    1 => {
                        let k = self.rng.range(1, 3);
                        let e = self.expr(sc, &vec![*n, k], d);
                        let j = self.rng.below(k);
                        let j = self.bound(j, k);
                        Some(format!("({e})[:, {j}]"))
                    }
                    2 => {
                        let e = self.expr(sc, &vec![len], d);
                        Some(format!("slice({e}, {a}, {})", a + n))
                    }
                    _ => {
                        let e = self.expr(sc, &vec![len], d);
                        let r = self.range_text(a, *n, len);
                        Some(format!("({e})[{r}]"))
                    }
                }
            }
            [m, n] => {
                let (a, b) = (self.rng.range(0, 2), self.rng.range(0, 2));
                let big = vec![m + a, n + b];
                let e = self.expr(sc, &big, d);
                let r0 = self.range_text(a, *m, m + a);
                let r1 = self.range_text(b, *n, n + b);
                if b == 0 && self.rng.chance(40) {
                    Some(format!("({e})[{r0}]"))
                } else {
                    Some(format!("({e})[{r0}, {r1}]"))
                }
            }
            _ => None,
        }
    }

    pub(super) fn reshape(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        let n = size(s);
        let mut sources = vec![vec![n]];
        if n == 1 {
            sources.push(vec![]);
            sources.push(vec![1, 1]);
        }
        for a in 1..=n {
            if divides(a, n) {
                sources.push(vec![a, n / a]);
            }
        }
        let t = self.rng.pick(&sources).clone();
        let e = self.expr(sc, &t, d);
        // `-1` is ambiguous for an empty array; it stays for non-empty ones.
        let target = match s.as_slice() {
            _ if n == 0 => tuple_text(s),
            [p, q] if self.rng.chance(30) => {
                if self.rng.chance(50) {
                    format!("(-1, {q})")
                } else {
                    format!("({p}, -1)")
                }
            }
            [_] if self.rng.chance(20) => "-1".into(),
            _ => tuple_text(s),
        };
        Some(format!("reshape({e}, {target})"))
    }

    pub(super) fn broadcast_like(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let t = self.sub_broadcast(s);
        let e = self.expr(sc, &t, d);
        format!("broadcast_to({e}, {})", tuple_text(s))
    }

    pub(super) fn concat(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        match s.as_slice() {
            [n] => {
                let a = self.rng.range(0, *n);
                let x = self.expr(sc, &vec![a], d);
                let y = self.expr(sc, &vec![n - a], d);
                Some(format!("concat({x}, {y})"))
            }
            [m, n] => {
                if self.rng.chance(50) {
                    let a = self.rng.range(0, *m);
                    let x = self.expr(sc, &vec![a, *n], d);
                    let y = self.expr(sc, &vec![m - a, *n], d);
                    Some(format!("concat({x}, {y}, {})", self.rng.pick(&["0", "-2"])))
                } else {
                    let a = self.rng.range(0, *n);
                    let x = self.expr(sc, &vec![*m, a], d);
                    let y = self.expr(sc, &vec![*m, n - a], d);
                    Some(format!("concat({x}, {y}, {})", self.rng.pick(&["1", "-1"])))
                }
            }
            _ => None,
        }
    }

    pub(super) fn pad(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        match s.as_slice() {
            [n] => {
                let a = self.rng.range(0, *n);
                let b = self.rng.range(0, n - a);
                let e = self.expr(sc, &vec![n - a - b], d);
                Some(format!("pad({e}, ({a}, {b}))"))
            }
            [m, n] => {
                let a = self.rng.range(0, *m);
                let c = self.rng.range(0, *n);
                let e = self.expr(sc, &vec![m - a, n - c], d);
                Some(format!("pad({e}, (({a}, 0), (0, {c})))"))
            }
            _ => None,
        }
    }

    pub(super) fn arg(&mut self, sc: &Scope, ty: &Ty, d: u32) -> String {
        match ty {
            Ty::Arr(s) => self.expr(sc, s, d),
            Ty::Tuple(ts) => {
                let items: Vec<String> = ts.iter().map(|t| self.expr(sc, t, d)).collect();
                format!("({})", items.join(", "))
            }
        }
    }

    pub(super) fn args(&mut self, sc: &Scope, tys: &[Ty], d: u32) -> String {
        let items: Vec<String> = tys.iter().map(|t| self.arg(sc, t, d)).collect();
        items.join(", ")
    }

    /// A call of a generated `def` whose result (or one element of it) has shape `s`.
    pub(super) fn call(&mut self, sc: &Scope, s: &Shape, d: u32) -> Option<String> {
        if let Some((name, params, result)) = sc.current.clone() {
            if self.rng.chance(2) && result == Ty::Arr(s.clone()) {
                let a = self.args(sc, &params, d);
                return Some(format!("{name}({a})"));
            }
        }
        let mut fits: Vec<(String, Vec<Ty>, Option<usize>)> = Vec::new();
        for def in &self.defs {
            let params: Vec<Ty> = def.params.iter().map(|(_, t)| t.clone()).collect();
            match &def.result {
                Ty::Arr(r) if r == s => fits.push((def.name.clone(), params, None)),
                Ty::Tuple(rs) => {
                    for (k, r) in rs.iter().enumerate() {
                        if r == s {
                            fits.push((def.name.clone(), params.clone(), Some(k)));
                        }
                    }
                }
                _ => {}
            }
        }
        if fits.is_empty() {
            return None;
        }
        let (name, params, k) = self.rng.pick(&fits).clone();
        let a = self.args(sc, &params, d);
        Some(match k {
            Some(k) => format!("{name}({a})[{k}]"),
            None => format!("{name}({a})"),
        })
    }

    /// An immediately applied lambda, often capturing names around it.
    pub(super) fn lambda_call(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let params: Vec<Ty> = (0..self.rng.range(1, 2)).map(|_| Ty::Arr(self.shape())).collect();
        let f = self.lambda(sc, &params, s, d);
        let a = self.args(sc, &params, d);
        format!("{f}({a})")
    }

    /// An `if` whose condition is known while lowering.
    pub(super) fn if_(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let cond = match self.rng.below(5) {
            0 => "1 < 2".to_string(),
            1 => "false".to_string(),
            2 => format!("rank({}) == {}", self.expr(sc, s, 0), s.len()),
            3 => format!("size({}) > 2", self.expr(sc, s, 0)),
            _ => "true && !false".to_string(),
        };
        let a = self.expr(sc, s, d);
        let b = self.expr(sc, s, d);
        if self.rng.chance(30) {
            let c = self.expr(sc, s, d);
            format!("if {cond} {{ {a} }} else if 2 > 3 {{ {b} }} else {{ {c} }}")
        } else {
            format!("if {cond} {{ {a} }} else {{ {b} }}")
        }
    }

    pub(super) fn tuple_index(&mut self, sc: &Scope, s: &Shape, d: u32) -> String {
        let other = self.shape();
        let a = self.expr(sc, s, d);
        let b = self.expr(sc, &other, d);
        if self.rng.chance(50) {
            format!("({a}, {b})[0]")
        } else {
            format!("({b}, {a})[-1]")
        }
    }
}
