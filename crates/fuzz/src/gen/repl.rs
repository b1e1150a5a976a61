//! REPL entries: statements, every command (abbreviated, misspelt, misused), `:load`,
//! `:reset`, and sequences that define, fail, redefine and reuse names.

use super::*;

impl Gen<'_> {
    /// A call (`f(x)`) whose callee has the given parameters and result, for the derivative
    /// commands; parenthesised so that lambdas and transforms can be called.
    pub(super) fn command_call(&mut self, params: &[Ty], result: &Shape) -> String {
        let sc = self.top_scope();
        let f = self.func(&sc, params, result, 2);
        let a = self.args(&sc, params, 2);
        if f.starts_with('(') || f.chars().all(|c| c.is_alphanumeric() || c == '_') {
            format!("{f}({a})")
        } else {
            format!("({f})({a})")
        }
    }

    pub(super) fn repl_entry(&mut self) -> String {
        self.budget();
        match self.rng.weighted(&[25, 30, 8, 8, 6, 5, 4, 5, 4, 5, 3, 6]) {
            0 => self.statement(),
            1 => {
                let cmd = self
                    .rng
                    .pick(&["grad", "hessian", "jacobian", "jvp", "vjp", "ir", "explain"])
                    .to_string();
                let t = self.shape();
                let (params, result) = match cmd.as_str() {
                    "grad" | "hessian" => (vec![Ty::Arr(t)], vec![]),
                    _ => (vec![Ty::Arr(t)], self.shape()),
                };
                let abbreviated = match cmd.as_str() {
                    "grad" => "gr",
                    "hessian" => "hes",
                    "jacobian" => "jac",
                    "explain" => "ex",
                    other => other,
                };
                let word = if self.rng.chance(20) { abbreviated.to_string() } else { cmd };
                let call = self.command_call(&params, &result);
                format!(":{word} {call}\n")
            }
            2 => {
                let s = self.shape();
                let sc = self.top_scope();
                let e = if self.rng.chance(30) && !self.defs.is_empty() {
                    let i = self.rng.below(self.defs.len());
                    self.defs[i].name.clone()
                } else {
                    self.expr(&sc, &s, 3)
                };
                format!(":type {e}\n")
            }
            3 => {
                let file = self.rng.pick(&[
                    "defs.ad",
                    "bad.ad",
                    "redef.ad",
                    "missing.ad",
                    "examples/least_squares.ad",
                    "examples/rosenbrock_newton.ad",
                    "examples/mlp_forward.ad",
                    "examples/logistic.ad",
                ]);
                let after = *self.rng.pick(&[
                    "",
                    ":grad loss([1, 2])\n",
                    "sq(k)\n",
                    ":hessian sq(k)\n",
                    "q\n",
                    "lin(ones((2, 3)), v)\n",
                ]);
                format!(":load {file}\n{after}")
            }
            4 => {
                // Forget everything; the generator keeps its names, so later entries use
                // names that no longer exist.
                if self.rng.chance(50) {
                    self.globals.clear();
                    self.defs.clear();
                }
                ":reset\n".to_string()
            }
            5 => {
                // Define a name, fail to redefine it, use it.
                let f = self.name("f");
                format!(
                    "def {f}(x) = x * 2\ndef {f}(x) = x + [1, 2] + [1, 2, 3]\n{f}(1)\nlet {f}v = [1, 2] @ [1]\n{f}v\n:grad {f}(3)\n"
                )
            }
            6 => {
                // A transform of a function that is then redefined.
                let f = self.name("f");
                let g = self.name("g");
                format!("def {f}(x) = x ^ 2\nlet {g} = grad({f})\ndef {f}(x) = x ^ 3\n{g}(2)\n:grad {f}(2)\ndef {f}(x, y) = x\n{g}(2)\n:hessian {f}(2)\n")
            }
            7 => self
                .rng
                .pick(&[
                    ":set precision 17\n",
                    ":set precision 0\n",
                    ":set precision\n",
                    ":set speed 3\n",
                    ":help\n",
                    ":help grad\n",
                    ":help :nothing\n",
                    ":h\n",
                    ":gard f(1)\n",
                    ":grad\n",
                    ":grad 1 +\n",
                    ":type let x = 1\n",
                    ":type 1; 2\n",
                    ":jacobian (v => v * [1, 2])([3, 4])\n",
                    ":explain (v => sum(v) * v)([1, 2, 3])\n",
                    ":grad (x => x)([1, 2])\n",
                    ":hessian sin(1)\n",
                    ":grad print(1)\n",
                    ":vjp randn(3)\n",
                    ":ir (x => x)(1)\n",
                    ":ir sum\n",
                ])
                .to_string(),
            8 => self.def(),
            9 => self.edge(),
            11 => self.misuse(),
            _ => {
                // A top-level name a function reads changes shape, then type: the cached
                // specialisations must notice.
                let (k, f) = (self.name("K"), self.name("F"));
                let a = self.shape();
                let b = self.shape();
                let sc = self.top_scope();
                let (ea, eb) = (self.expr(&sc, &a, 1), self.expr(&sc, &b, 1));
                format!(
                    "let {k} = {ea}\ndef {f}(x) = sum(x * {k})\n{f}(1)\n:grad {f}(2)\nlet {k} = {eb}\n{f}(1)\n:hessian {f}(2)\n{k} = ({k}, 1)\n{f}(1)\nlet {k} = sin\n:jacobian {f}(1)\n"
                )
            }
        }
    }
}
