//! Statements: top-level names, `def`s with expression or block bodies (loops, constant
//! `if`s, annotations), prints, reassignments, loops and destructuring.

use super::*;

impl Gen<'_> {
    pub(super) fn top_scope(&self) -> Scope {
        Scope::default()
    }

    pub(super) fn budget(&mut self) {
        self.nodes = self.rng.range(4, 30);
    }

    pub(super) fn global_let(&mut self) -> String {
        self.budget();
        let name = self.name("g");
        let ty = self.ty();
        let e = self.arg(&self.top_scope(), &ty, 3);
        self.globals.push((name.clone(), ty));
        format!("let {name} = {e}\n")
    }

    /// A `def` with an expression or block body, maybe with shape annotations.
    pub(super) fn def(&mut self) -> String {
        self.budget();
        let name = self.name("f");
        let params: Vec<(String, Ty)> =
            (0..self.rng.range(1, 3)).map(|_| (self.name("x"), self.ty())).collect();
        let result = if self.rng.chance(10) {
            Ty::Tuple(vec![self.shape(), self.shape()])
        } else {
            Ty::Arr(self.shape())
        };
        let annotate = self.rng.chance(35);
        let named = self.rng.chance(50);
        let mut dim_names: Vec<(usize, String)> = Vec::new();
        let mut plist = Vec::new();
        let mut annotated = true;
        for (p, ty) in &params {
            match ty {
                Ty::Arr(s) if annotate => {
                    let dims: Vec<String> = s
                        .iter()
                        .map(|&n| {
                            if !named {
                                return n.to_string();
                            }
                            if let Some((_, nm)) = dim_names.iter().find(|(v, _)| *v == n) {
                                return nm.clone();
                            }
                            let nm = ["n", "m", "k", "p", "q"][dim_names.len() % 5].to_string();
                            dim_names.push((n, nm.clone()));
                            nm
                        })
                        .collect();
                    plist.push(format!("{p}: [{}]", dims.join(", ")));
                }
                _ => {
                    annotated = false;
                    plist.push(p.clone());
                }
            }
        }
        let ptys: Vec<Ty> = params.iter().map(|(_, t)| t.clone()).collect();
        let mut sc = self.top_scope().with(&params, true);
        sc.current = Some((name.clone(), ptys, result.clone()));
        let body = if self.rng.chance(50) {
            format!(" = {}\n", self.arg(&sc, &result, 4))
        } else {
            self.block_body(&mut sc, &result)
        };
        // Named dimensions need `--shape` options for `ad derive`; only constant
        // annotations make a signature complete.
        let annotated = annotated && !named;
        self.defs.push(DefInfo { name: name.clone(), params, result, annotated });
        format!("def {name}({}){body}", plist.join(", "))
    }

    pub(super) fn block_body(&mut self, sc: &mut Scope, result: &Ty) -> String {
        let mut out = String::from(" {\n");
        for _ in 0..self.rng.range(0, 2) {
            let t = self.name("t");
            let ty = Ty::Arr(self.shape());
            let e = self.arg(sc, &ty, 3);
            out.push_str(&format!("  let {t} = {e}\n"));
            sc.vars.push((t, ty));
        }
        if let Ty::Arr(s) = result {
            let acc = self.name("acc");
            let e = self.expr(sc, s, 3);
            out.push_str(&format!("  let {acc} = {e}\n"));
            sc.vars.push((acc.clone(), result.clone()));
            if self.rng.chance(60) {
                let i = self.name("i");
                let n = self.rng.range(0, 4);
                let mut inner = sc.clone();
                inner.vars.push((i.clone(), Ty::Arr(vec![])));
                let step = self.expr(&inner, s, 2);
                let op = self.rng.pick(&["+", "*", "-"]);
                out.push_str(&format!("  for {i} in 0..{n} {{\n    {acc} = {acc} {op} {step}\n  }}\n"));
            }
            if self.rng.chance(20) {
                let other = self.expr(sc, s, 2);
                out.push_str(&format!("  if 2 > 1 {{ {acc} }} else {{ {other} }}\n}}\n"));
            } else {
                out.push_str(&format!("  {acc}\n}}\n"));
            }
        } else {
            let e = self.arg(sc, result, 3);
            out.push_str(&format!("  {e}\n}}\n"));
        }
        out
    }

    pub(super) fn statement(&mut self) -> String {
        self.budget();
        let sc = self.top_scope();
        match self.rng.weighted(&[30, 10, 8, 8, 6, 5, 6, 5, 4, 3]) {
            0 => {
                let n = self.rng.range(1, 2);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let s = self.shape();
                        self.expr(&sc, &s, 4)
                    })
                    .collect();
                format!("print({})\n", items.join(", "))
            }
            1 => self.global_let(),
            2 => self.def(),
            3 => {
                // Reassign a global, keeping its type so later statements still fit.
                let arrays: Vec<(String, Shape)> = self
                    .globals
                    .iter()
                    .filter_map(|(n, t)| match t {
                        Ty::Arr(s) => Some((n.clone(), s.clone())),
                        Ty::Tuple(_) => None,
                    })
                    .collect();
                if arrays.is_empty() {
                    return self.global_let();
                }
                let (n, s) = self.rng.pick(&arrays).clone();
                if self.rng.chance(50) {
                    let i = self.name("i");
                    let k = self.rng.range(0, 4);
                    let mut inner = sc.clone();
                    inner.vars.push((i.clone(), Ty::Arr(vec![])));
                    let e = self.expr(&inner, &s, 3);
                    format!("for {i} in 0..{k} {{\n  {n} = {n} + {e}\n}}\n")
                } else {
                    let e = self.expr(&sc, &s, 3);
                    format!("{n} = {e}\n")
                }
            }
            4 => {
                let c = self.name("c");
                let bound = self.rng.range(0, 4);
                let body = self.expr(&sc, &vec![], 2);
                self.globals.push((c.clone(), Ty::Arr(vec![])));
                format!("let {c} = 0\nwhile {c} < {bound} {{\n  {c} = {c} + 1\n  print({body})\n}}\n")
            }
            5 => {
                // Destructuring: a tuple, or `value_and_grad`'s pair.
                let (a, b) = (self.name("g"), self.name("g"));
                let s = self.shape();
                if self.rng.chance(50) {
                    let f = self.func(&sc, &[Ty::Arr(s.clone())], &vec![], 3);
                    let x = self.expr(&sc, &s, 3);
                    self.globals.push((a.clone(), Ty::Arr(vec![])));
                    self.globals.push((b.clone(), Ty::Arr(s)));
                    format!("let ({a}, {b}) = value_and_grad({f})({x})\nprint({a}, {b})\n")
                } else {
                    let t = self.shape();
                    let (x, y) = (self.expr(&sc, &s, 3), self.expr(&sc, &t, 3));
                    self.globals.push((a.clone(), Ty::Arr(s)));
                    self.globals.push((b.clone(), Ty::Arr(t)));
                    format!("let ({a}, {b}) = ({x}, {y})\n")
                }
            }
            6 => {
                // A derivative printed whole (tuples included).
                let s = self.shape();
                let t = self.shape();
                let f = self.func(&sc, &[Ty::Arr(t.clone())], &s, 3);
                let x = self.expr(&sc, &t, 2);
                let v = self.expr(&sc, &t, 2);
                let ct = self.expr(&sc, &s, 2);
                match self.rng.below(3) {
                    0 => format!("print(jvp({f}, {x}, {v}))\n"),
                    1 => format!("print(vjp({f}, {x}, {ct}))\n"),
                    _ => format!("print({}({f})({x}))\n", self.rng.pick(JACOBIANS)),
                }
            }
            7 => self.edge(),
            8 => {
                let s = self.shape();
                let e = self.expr(&sc, &s, 4);
                format!("{e}\n")
            }
            _ => self.misuse(),
        }
    }
}
