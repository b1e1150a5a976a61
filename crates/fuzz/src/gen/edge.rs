//! Hand-written shapes of trouble with random parts: misuse that must end in a located
//! error, and edge cases (huge sizes, empty arrays, random builtins under transforms,
//! recursion through transforms).

use super::*;

impl Gen<'_> {
    /// Misuse that must end in a located error: functions where arrays belong and the
    /// reverse, bad argument numbers, impossible shapes and sizes, files that are not CSV,
    /// imports of files that are not scripts (or not files).
    pub(super) fn misuse(&mut self) -> String {
        let n = self.rng.range(0, 3);
        let bad = *self.rng.pick(&[
            "-1",
            "1.5",
            "nan",
            "inf",
            "-inf",
            "1e308",
            "(2, -1)",
            "(1, 2, 3)",
            "\"3\"",
            "()",
        ]);
        let file = *self.rng.pick(&[
            "defs.ad",
            "examples",
            "missing.csv",
            "",
            "/dev/null",
            "data.csv",
            "ragged.csv",
            "empty.csv",
            "odd.csv",
        ]);
        let templates: Vec<String> = vec![
            format!("print(zeros({bad}), ones({bad}))\n"),
            format!("print(eye({bad}), arange({bad}))\n"),
            format!("print(linspace(0, 1, {bad}), full({bad}, 1))\n"),
            format!("print(randn({bad}))\n"),
            format!("seed({bad})\nprint(rand(2))\n"),
            format!("print(reshape(ones(6), {bad}), reshape(ones(6), (-1, -1)))\n"),
            format!("print(pad(ones(3), ({bad}, 0)), pad(ones((2, 2)), (1, 1)))\n"),
            format!("print(concat(ones(2), ones(2), {bad}), sum(ones((2, 2)), {bad}))\n"),
            format!("print(one_hot([1, 2], {bad}), argmax(ones(3), {bad}))\n"),
            format!("print(ones(4)[{bad}], ones(4)[1:{bad}], ones((2, 2))[0, {bad}])\n"),
            format!("print(broadcast_to(ones(3), {bad}), sum_to(ones((2, 3)), {bad}))\n"),
            format!("print(grad(x => x, {bad})(1), grad((x, y) => x * y, (0, 0))(1, 2))\n"),
            format!("print(grad(x => x * 2, {n} + 1)(1), value_and_grad((x, y) => x, (1, 5))(1, 2))\n"),
            "print(sum(sin), sin + 1, grad(1), grad(sin)(sin), jacobian(grad)(1))\n".to_string(),
            "print(grad(print)(1), hessian(seed)(1), jacobian(now)(1), grad(read_csv)(1))\n".to_string(),
            "print(jacobian(x => (x, x))(1), grad(x => ())(1), vjp(x => x, 1), jvp(sin, 1))\n".to_string(),
            "print(grad(x => \"s\")(1), \"a\" + 1, -\"s\", [\"a\", 1], (1, 2) @ (3, 4))\n".to_string(),
            "print(hvp(x => x, 1, 1), hessian(x => (x, x))(1), jacfwd(x => sin)(1))\n".to_string(),
            format!("let csv = read_csv(\"{file}\")\nprint(csv, shape(csv), grad(x => sum(x * csv))(csv))\n"),
            format!(
                "write_csv(\"out.csv\", {})\nprint(read_csv(\"out.csv\"))\n",
                self.rng.pick(&[
                    "zeros((2, 0))",
                    "zeros(0)",
                    "[nan, inf, -inf, 1e-308]",
                    "1",
                    "eye(3)",
                    "ones((1, 1))",
                    "(1, 2)"
                ])
            ),
            "def g(x) { print(x) }\nprint(grad(g)(1))\n".to_string(),
            "def g(x) { while x > 0 { x = x - 1 }\n x }\nprint(grad(g)(3))\n".to_string(),
            "def g(x) = if x > 0 { x } else { -x }\nprint(grad(g)(3), jacobian(g)([1, -1]))\n".to_string(),
            format!("def g(x) {{ for i in 0..x {{ x = x + 1 }}\n x }}\nprint(g({n}), grad(g)({n}))\n"),
            format!("print(x => x, grad, (1, sin), [1, 2][{n}:{n}], ones((2, 3))[::], 1..2)\n"),
            format!("import \"{file}\"\nimport \"defs.ad\"\nprint(sq({n}), k, grad(loss)(v))\n"),
            format!("import \"redef.ad\"\nimport \"defs.ad\"\nimport \"{file}\"\nprint(sq({n}), k)\n"),
        ];
        self.rng.pick(&templates).clone()
    }

    /// Hand-picked shapes of trouble, with random parts.
    pub(super) fn edge(&mut self) -> String {
        let f = self.name("r");
        let n = self.rng.range(1, 4);
        let big = self.rng.pick(&["46341", "46340", "40000", "65536", "100000", "2147483648"]).to_string();
        let templates: Vec<String> = vec![
            format!("def {f}(x) = grad({f})(x)\nprint({f}({n}))\n"),
            format!("def {f}(x) = x * jacobian({f})(x)\nprint({f}([1, 2]))\n"),
            format!("def {f}(x) = hessian(y => {f}(y) * x)(x)\nprint({f}(1))\n"),
            format!("print(jacobian(randn)({n}))\n"),
            format!("print({}(rand)({n}))\n", self.rng.pick(&["jacfwd", "jacrev", "hessian", "grad"])),
            format!("print(grad(x => x * randn(()))({n}))\n"),
            format!("print(jacobian(x => randn({n}) * x)(1))\n"),
            format!("print(zeros(({big}, {big})))\n"),
            format!("print(sum(ones({big})))\n"),
            format!("print(eye({big}))\n"),
            format!("print(hessian(x => sum(x ^ 2))(zeros({big})))\n"),
            format!("print(jacobian(x => x * 2)(ones({big})))\n"),
            format!("print(grad(x => sum(x))(zeros(({n}, 0))))\n"),
            format!("print(jacobian(x => x)(zeros(0)), hessian(x => sum(x))(zeros(0)))\n"),
            "print(amax(zeros(0)), softmax(zeros((0, 3))), zeros((2, 0)) @ zeros((0, 3)))\n".to_string(),
            "print(where([[1], [0]], ones((2, 3)), zeros(3)))\n".to_string(),
            format!("print(grad(x => sum(where([[1], [0]], x, x ^ 2)))(ones((2, {n}))))\n"),
            format!("print(grad(grad(grad(grad(x => x ^ {})))(1.5))\n", n + 3),
            format!(
                "print(jacobian(grad(x => sum(x ^ 3)))(ones({n})), hessian(x => x[0] * x[-1])(ones({n})))\n"
            ),
            "print(hessian(x => x)([1, 2]))\n".to_string(),
            format!("print(grad(x => x[0:0] @ x[0:0])(ones({n})), [1, 2, 3][-5:], [1, 2, 3][2:1])\n"),
            format!("print(reshape(zeros((2, 0)), (-1, 0)), reshape(ones({n}), (-1, 1)))\n"),
            "print(grad(p => p[0] * p[1])((1, 2)), grad((x, y) => x * y, (0, 1))(3, 4))\n".to_string(),
            "print(vjp(x => (x, x * 2), 1, (1, 1)), jvp((x, y) => x * y, (1, 2), (1, 0)))\n".to_string(),
            format!("print(hvp(x => sum(sin(x)), ones({n}), zeros({n})), hvp(x => x ^ 3, 1, 1))\n"),
            format!("print(grad(x => {})(1))\n", "sin(".repeat(60) + "x" + &")".repeat(60)),
            format!("let {f} = 1\nfor i in 0..{} {{ {f} = grad(x => x * {f})(2) }}\nprint({f})\n", n * 10),
            format!(
                "print(jacobian(x => concat(x, x))(ones({n})), jacrev(x => pad(x, (1, 2)))(ones({n})))\n"
            ),
            format!("print(hessian(x => sum(x ^ 3))(ones((2, {n}))), jacobian(x => x')(ones((2, {n}))))\n"),
            format!(
                "print(jacobian(x => sum(x, 0))(ones((2, {n}))), jacobian(x => x @ x')(ones((2, {n}))))\n"
            ),
            "print(grad(x => sqrt(x))(0), grad(x => sum(where(x > 0, sqrt(x), 0)))([0, 4]))\n".to_string(),
            "print(grad(x => log(x))(0), grad(x => x ^ 0.5)(0), grad(x => abs(x))(0), grad(relu)(0))\n"
                .to_string(),
            format!("print(grad(x => amax(x))(ones({n})), grad(x => max(x, 1))(1), grad(sigmoid)(1e308))\n"),
            format!("print(stop_gradient(grad(x => x ^ 2))(3), grad(stop_gradient)({n}))\n"),
            "print(grad(x => x)(nan), hessian(x => x ^ 2)(inf), jacobian(x => x / 0)([0, 1]))\n".to_string(),
            format!(
                "print(solve(zeros(({n}, {n})), ones({n})), grad(x => sum(solve(x, ones({n}))))(eye({n})))\n"
            ),
            format!(
                "print(grad(x => sum(inv(x)))(eye({n}) * 2), jacobian(x => solve(eye({n}), x))(ones({n})))\n"
            ),
            format!("print(one_hot([0, {n}, -1, 1e308], 3), argmax(zeros(0)), linspace(0, 1, 0))\n"),
        ];
        self.rng.pick(&templates).clone()
    }
}
