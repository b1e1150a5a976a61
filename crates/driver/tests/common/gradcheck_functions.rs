//! The functions every primitive and library function is gradient-checked through
//! (`gradcheck.rs`); `primitives.rs` requires one for each primitive.

/// Functions of annotated parameters; inputs are drawn from [0.5, 1.5), away from kinks.
pub const FUNCTIONS: &[&str] = &[
    "def f(x: [3]) = -x",
    // A loop equation (more iterations than are unrolled) carrying a vector and an array,
    // with indexing and indexed update at the loop's index.
    "def f(x: [20, 3], y: [20], w: [3]) {\n  let h = w\n  for i in 0..20 {\n    h = tanh(h * x[i]) * 0.9 + w\n    y[i] = sum(h) * y[i]\n  }\n  (h, y)\n}",
    // A loop carrying a tuple (one carried value per array), and an `if` rebinding it.
    "def f(W: [2, 3], b: [3], x: [4, 2]) {\n  let p = (W, b)\n  for k in 0..20 {\n    let (A, c) = p\n    p = (A * 0.9 + 0.01 * c[0], c - 0.1 * sum(tanh(x @ A + c), 0))\n    if sum(c) > 2 { p = (A, c * 0.5) }\n  }\n  let (A, c) = p\n  tanh(x @ A + c)\n}",
    // A `while` loop whose trip count depends on the values (reversed by `reverse_loop`),
    // and a `for` loop whose bounds are computed.
    "def f(x: [3], k: []) {\n  let h = x\n  let n = 0\n  while sum(h * h) < 30 && n < 12 {\n    h = h * (1 + 0.1 * k) + sin(h) * 0.2\n    n += 1\n  }\n  h * k\n}",
    "def f(x: [6], w: [2]) {\n  let s = w[0]\n  for i in 0..sign(abs(w[0]) + 1) * 4 {\n    s = s * tanh(x[i] * w[1]) + x[i + 1]\n  }\n  s\n}",
    // Windows at computed starts (`x[i:i + 2]`), and parts assigned at computed and known
    // places (`s[i, i:i + 2] += v`, `s[:, i + 1] = v`), in a loop with a computed bound.
    "def f(x: [6], M: [3, 4]) {\n  let s = M\n  for i in 0..sign(x[0] + 1) * 3 {\n    s[i, i:i + 2] += x[i:i + 2] * s[0, 1:3]\n    s[:, i + 1] = tanh(s[:, i])\n  }\n  s * sum(x[2:5])\n}",
    // `vmap` of loops: a `for` over the batch, and a `while` whose trip count differs
    // between batch elements (the loop runs until all stop, each keeping its values).
    "def g(a, k) {\n  let y = a\n  for i in 0..20 { y = y + 0.05 * sin(y * k) }\n  y\n}\ndef f(x: [3], k: []) = vmap(a => g(a, k))(x)",
    "def step(a, k) {\n  let x = a\n  let n = 0\n  while n < 3 + sign(a) {\n    x = x - 0.1 * sin(x * k)\n    n += 1\n  }\n  x\n}\ndef f(x: [3], k: []) = vmap(a => step(a, k))(x * [1, -1, 1])",
    // `vmap` of a gradient through a `while` loop: the reversal batched, masked where the
    // elements' trip counts differ. Its second derivatives here are third derivatives of
    // the loop, among them reverse over forward over reverse.
    "def step(a, k) {\n  let x = a\n  let n = 0\n  while n < 3 + sign(a) {\n    x = x - 0.1 * sin(x * k)\n    n += 1\n  }\n  x\n}\ndef f(x: [3], k: []) = vmap(a => grad(a => step(a, k))(a))(x * [1, -1, 1])",
    // `if` on computed conditions: a value chosen, and a name rebound in one branch.
    "def f(x: [3], k: []) {\n  let s = sum(x * x)\n  let y = if s > k { x * k } else { sin(x) }\n  if y[0] < 0 { y = -y * s }\n  y * s\n}",
    // `if` with a tuple value, branches that rebind a name or read a value the other does
    // not, and an `if` inside a loop.
    "def f(x: [2, 3], k: []) {\n  let n = sum(x * x)\n  let (a, b) = if n > k { (x * k, n) } else { (sin(x), 1) }\n  let m = x\n  if b > 2 { m = m * b } else {\n    let t = a[0]\n    m = m + t * t\n  }\n  if k < 0 { a = -a }\n  a + m\n}",
    "def f(x: [3], k: []) {\n  let h = x\n  for i in 0..20 {\n    h = if sum(h) > k * 3 { h * 0.9 } else { tanh(h) + x }\n  }\n  h\n}",
    // `vmap` of `if`: a condition that differs between elements (both branches run, each
    // element keeps its own) and one that does not (one `if` over batched branches).
    "def h(a, k) = if a > 0.9 { a * a * k } else { sin(a) * k }\ndef u(a, k) = if k > 1 { a * k } else { tanh(a) }\ndef f(x: [3], k: []) = vmap(a => h(a, k) + u(a, k))(x)",
    "def f(x: [3]) = exp(x)",
    // The library's elementwise functions (inputs in [0.5, 1.5): scaled into each domain).
    "def f(x: [2, 3]) = tan(x) + asin(x * 0.5) * acos(x * 0.5) + atan(x)",
    "def f(x: [2, 3]) = (sinh(x) * cosh(x), asinh(x) + acosh(x + 1) * atanh(x * 0.5))",
    "def f(x: [2, 3]) = (log1p(x) + expm1(x) * log2(x), log10(x) * exp2(x), erf(x) - erfc(x) * cbrt(x))",
    "def f(x: [2, 3], y: [3]) = (floor(x * 3) * x + ceil(x) * x + round(x * 3) * x + trunc(x * 3) * x, mod(x * 3, y) * x)",
    "def f(x: [2, 3], y: [3]) = (hypot(x, y - 1), logaddexp(x, y * 2))",
    "def f(x: [2, 3]) = (square(x) + softplus(x) + clip(x, 0.7, 1.2) + logit(x * 0.5), gelu(x) * silu(x))",
    "def f(x: [2, 3]) = (amin(x) + amin(x, 0) * var(x) + std(x, 1)[0] + var(x, (0, 1)), trace(x @ x') * diag(x[:, 0:2]))",
    "def f(x: [2, 5, 3]) = (prod(x), prod(x, 1) * prod(x - 1, (0, 2))[1:4])",
    // A function with its own derivative rule (here the true derivative, by another
    // formula), called on a computed argument, with a closure reading a top-level value.
    // `check` (the identity for derivatives), and `fixed_point`'s implicit derivative
    // (reverse mode only: its `bwd` iterates, which forward mode cannot transpose).
    "def f(x: [2, 3], k: [3]) = check(sin(x) * k, sum(x) < 100, \"too large: {}\", sum(x)) * x",
    // `eigh` (through functions of the eigenvectors that do not depend on their signs),
    // on a matrix whose eigenvalues stay apart.
    "def f(x: [3, 3]) {\n  let A = x + x' + diag([6, 3, 0])\n  let (w, V) = eigh(A)\n  sin(w) * 3 + (V * V) @ [1, 2, 3] + V[0] * V[2] + eigvalsh(A @ A') * 0.1\n}",
    // `qr` of a tall matrix of full column rank.
    "def f(x: [4, 3]) {\n  let (Q, R) = qr(x + [[3, 0, 0], [0, 3, 0], [0, 0, 3], [1, 1, 1]])\n  sin(Q) @ R + Q * 2\n}",
    // `qr` of a stack of wide matrices (the square part's decomposition, extended).
    "def f(x: [2, 3, 4]) {\n  let (Q, R) = qr(x + [[3, 0, 0, 1], [0, 3, 0, 1], [0, 0, 3, 1]])\n  (sin(Q) @ R, R * Q[:, :, :1])\n}",
    // `svd` of a tall and of a wide matrix (through functions of the singular vectors that
    // do not depend on their signs), with singular values kept apart, and `pinv`.
    "def f(x: [4, 3]) {\n  let (U, s, Vt) = svd(x + [[4, 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0]])\n  (U * U) @ sin(s) + U[:, 0] * U[:, 2] + sum(Vt * Vt * [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 0)[0]\n}",
    "def f(x: [2, 4]) {\n  let (U, s, Vt) = svd(x + [[3, 0, 0, 0], [0, 1, 0, 0]])\n  sum(Vt * Vt * [1, 2, 3, 4], 1) * s + U[0] * U[1] + pinv(x + [[3, 0, 0, 0], [0, 1, 0, 0]])[1:3, 0]\n}",
    // `cumprod` (a scan of products), along each axis and over the flattened array.
    "def f(x: [3, 4]) = cumprod(x, 1) * cumprod(x, 0) + reshape(cumprod(x), (3, 4))",
    // `flip`, and slices with steps (made of `index`, `flip`, `pad` and `reshape`).
    "def f(x: [3, 4, 2]) = sum(flip(x, (0, 2)) * x, 1)[::2] + flip(x)[::-2, 1::2, 0] * x[::2, :2, 1]",
    // Assigning to slices with steps (`where` of the scattered value and a constant mask).
    "def f(x: [4, 6], v: [3]) {\n  let y = x\n  y[::2, 1::2] = sin(x[1::2, ::-2]) * v\n  y[1, ::-3] *= v[:2]\n  y * x\n}",
    // `custom_vjp`: reverse mode runs `bwd`, forward mode its transpose; with a value the
    // rules read from outside their arguments, in a loop, and batched by `vmap`.
    "def g(a, b) = tanh(a @ b) * 2\ndef g_fwd(a, b) {\n  let y = tanh(a @ b)\n  (y * 2, (a, b, y))\n}\ndef g_bwd(res, out_bar) {\n  let (a, b, y) = res\n  let c = out_bar * 2 * (1 - y * y)\n  (c @ b', a' @ c)\n}\ndef f(x: [2, 3], w: [3, 4]) = custom_vjp(g, g_fwd, g_bwd)(sin(x), w * w)",
    "def g(a, w) = sin(a) * w\ndef g_fwd(a, w) = (sin(a) * w, (a, w))\ndef g_bwd(r, c) {\n  let (a, w) = r\n  (c * cos(a) * w, c * sin(a))\n}\ndef f(x: [4, 3], w: [3]) = vmap(r => custom_vjp(g, g_fwd, g_bwd)(r, w))(x * x)",
    "def h(a) = a * a * 0.5\ndef f(x: [3], k: []) {\n  let s = custom_vjp(h, a => (h(a), a), (a, g) => (a * g,))\n  let y = x\n  for i in 0..20 {\n    y = s(sin(y) * k) + x\n  }\n  y + vmap(s)(x * k)\n}",
    "def g(x, k) = log(1 + exp(x * k))\ndef rule(p, t) {\n  let (x, k) = p\n  let (dx, dk) = t\n  let s = sigmoid(x * k)\n  (g(x, k), s * (dx * k + x * dk))\n}\ndef f(x: [2, 3], k: [3]) = custom_jvp(g, rule)(x * x, k) * x",
    // Decompositions, on well-conditioned matrices made from the inputs.
    "def f(X: [3, 3], b: [3, 2]) {\n  let A = X @ X' + eye(3)\n  let L = cholesky(A)\n  (L, solve_triangular(L, b, 1) + solve_triangular(X + 2 * eye(3), b, 0))\n}",
    "def f(X: [3, 3]) = (logabsdet(X + 2 * eye(3)) * signdet(X - 3 * eye(3)), det(X @ X' + eye(3)), slogdet(-X - eye(3))[1])",
    // The same on stacks of matrices (one factorisation per matrix), with a vector per
    // matrix as right-hand side, and the decompositions of stacks.
    "def f(X: [2, 3, 3], b: [2, 3]) {\n  let A = X @ transpose(X, (0, 2, 1)) + eye(3)\n  let L = cholesky(A)\n  (L, solve_triangular(L, b, 1) * solve(X + 2 * eye(3), b), logabsdet(X + 2 * eye(3)) * det(A), inv(A) * trace(A)[1])\n}",
    "def f(X: [2, 4, 3]) {\n  let Y = X + [[3, 0, 0], [0, 3, 0], [0, 0, 3], [1, 1, 1]]\n  let (Q, R) = qr(Y)\n  let (w, V) = eigh(transpose(X, (0, 2, 1)) @ X + diag([6, 3, 0]))\n  let (U, s, Vt) = svd(Y)\n  (sin(Q) @ R, w * sum(V * V * [1, 2, 3], 1), sum(U * U * reshape([1, 2, 3, 4], (4, 1)), 1) * s + sum(Vt * Vt, 2))\n}",
    "def f(x: [2, 3, 2]) = (cumsum(x) * 0.1 * cumsum(x * x, 1, 1)[0, 0, 0], cumsum(x, -1) * cumsum(x, 0) * 0.1)",
    "def f(x: [3]) = log(x)",
    "def f(x: [3]) = sin(x)",
    "def f(x: [3]) = cos(x)",
    "def f(x: [3]) = tanh(x)",
    "def f(x: [3]) = sqrt(x)",
    "def f(x: [3]) = abs(x - 1)",
    "def f(x: [3]) = sigmoid(x)",
    "def f(x: [3]) = relu(x - 1)",
    "def f(x: [3]) = sign(x - 1) * x",
    "def f(a: [2, 3], b: [3]) = a + b",
    "def f(a: [2, 3], b: [2, 1]) = a - b",
    "def f(a: [3], b: []) = a * b",
    "def f(a: [3], b: [3]) = a / b",
    "def f(a: [3], b: [3]) = a ^ b",
    "def f(x: [3]) = x ^ 3 + x ^ 0.5",
    "def f(a: [3], b: [3]) = max(a, b) + min(a, b) * 2",
    "def f(a: [3], b: [3]) = atan2(a, b) + atan2(-a, b - 2)",
    "def f(a: [3], b: [3]) = where(a < b, a * b, b)",
    "def f(a: [3], b: [3]) = safe_mul(a, b)",
    "def f(A: [2, 3], B: [3, 4]) = A @ B",
    "def f(A: [2, 3], x: [3]) = A @ x",
    "def f(x: [2], A: [2, 3]) = x @ A",
    "def f(x: [3], y: [3]) = x @ y",
    "def f(A: [2, 3]) = A' @ A",
    "def f(A: [3, 3], b: [3]) = solve(A + 3 * eye(3), b)",
    "def f(A: [2, 3], B: [3, 4], x: [3]) = (safe_matmul(A, B), safe_matmul(A, x), safe_matmul(x, B))",
    "def f(A: [3, 3], B: [3, 2]) = safe_solve(A + 3 * eye(3), B)",
    "def f(a: [3], b: [3]) = where((a <= b) || !(a > b), a * b, a) + where((a >= b) && (a != b), b, a * 2) + (a == b)",
    "def f(x: [3]) = x * one_hot(argmax(x), 3) + x ^ 2",
    "def f(x: [3]) = x * arange(3) + zeros(3) + ones(3) * x + full(3, 2) * linspace(0, 1, 3) * x",
    "def f(A: [2, 3]) = (sum(A), sum(A, 0), sum(A, 1))",
    "def f(A: [2, 3]) = (amax(A), amax(A, 0), amax(A, 1))",
    "def f(A: [2, 3]) = reshape(A, (3, 2)) * 2",
    "def f(x: [3]) = broadcast_to(x, (2, 3)) * [[1], [2]]",
    "def f(A: [2, 3]) = (sum_to(A, (1, 3)), sum_to(A, (2, 1)), sum_to(A, ()))",
    "def f(A: [3, 4]) = (A[1], A[:, 2], A[1:3, :2], A[-1, -1])",
    "def f(x: [5]) = x[1:] * x[:-1]",
    "def f(x: [3], A: [2, 2]) = (pad(x, (1, 2)) ^ 2, pad(A, ((1, 0), (0, 1))))",
    "def f(a: [2, 3], b: [2, 1]) = concat(a, b, 1) ^ 2",
    "def f(a: [], b: []) = [a, b * 2, a * b]",
    "def f(x: [3]) = x * stop_gradient(x) + x",
    "def f(A: [2, 3]) = (mean(A), mean(A, 0), mean(A, 1))",
    "def f(A: [2, 3]) = (logsumexp(A), logsumexp(A, 0), logsumexp(A, 1))",
    "def f(A: [2, 3]) = (softmax(A), softmax(A, 0), log_softmax(A))",
    "def f(a: [4], b: [4]) = mse(a, b)",
    "def f(logits: [2, 3], y: [2, 3]) = cross_entropy(logits, y)",
    "def f(x: [3]) = norm(x) * dot(x, x)",
    "def f(x: [2], y: [3]) = outer(x, y)",
    "def f(A: [2, 2]) = inv(A + 2 * eye(2))",
    "def f(W1: [3, 4], b1: [4], W2: [4, 2], X: [5, 3]) = tanh(X @ W1 + b1) @ W2",
    // Any rank: elementwise with broadcasting, reductions over axis sets, batched products,
    // permutations, indexing, padding, joining and the library's axis arguments.
    "def f(x: [2, 3, 2], y: [3, 1]) = sin(x) * y + x ^ 2 / (y + 2) + max(x, y) + where(x > y, x, y * x)",
    "def f(x: [2, 2, 3, 2]) = (sum(x, (0, 2)), amax(x, (1, 3)), sum(x, -1), amax(x), mean(x, (0, 3)))",
    "def f(a: [2, 2, 3], b: [2, 3, 4], c: [3]) = (a @ b, a @ c, c @ b, a' @ a)",
    "def f(a: [2, 1, 2, 3], b: [3, 3, 2]) = a @ b",
    "def f(x: [2, 3, 4], W: [4, 2]) = (tanh(x @ W), x @ W[:, 0])",
    "def f(x: [2, 3, 4]) = (transpose(x, (2, 0, 1)) ^ 2, transpose(x), x[1, :, 1:3], x[:, -1])",
    "def f(x: [2, 3, 2], y: [2, 1, 2]) = (concat((x, y, x), 1), stack((x, x * y), 2), pad(x, ((0, 1), (1, 0), (0, 0))))",
    "def f(x: [2, 3, 2]) = (reshape(x, (3, 4)), expand_dims(x, (0, -1)) * 2, squeeze(x[:, :1, :]), broadcast_to(x, (2, 2, 3, 2)))",
    "def f(x: [2, 3, 4], y: [2, 4, 3]) = (einsum(\"bij,bjk->bik\", x, y), einsum(\"bij,bji->b\", x, y), einsum(\"bii->b\", x @ y))",
    "def f(x: [2, 3, 4]) = (softmax(x, 1), logsumexp(x, 2), log_softmax(x), sum_to(x, (3, 1)))",
    // Convolution and pooling, and the adjoints derived programs use.
    "def f(x: [2, 5, 4, 3], k: [3, 2, 3, 2]) = (tanh(conv2d(x, k, 1, \"same\")), conv2d(x, k, 2, \"valid\") ^ 2)",
    "def f(x: [1, 4, 4, 2], k: [2, 2, 2, 3], g: [1, 2, 2, 3]) = (conv2d_transpose_input(g, k, (1, 4, 4, 2), 2, \"same\") ^ 2, conv2d_transpose_kernel(x, g, (2, 2, 2, 3), 2, \"same\") ^ 2)",
    // Convolutions in groups (depthwise, and two groups of two channels), their adjoints in
    // groups, and `vmap` over kernels (one convolution in a group per batch element; with the
    // image shared, the kernels as output channels), whose derivatives batch the adjoints.
    "def f(x: [2, 4, 5, 4], k: [2, 2, 2, 6], d: [3, 2, 1, 4]) = (tanh(conv2d(x, k, 1, \"same\", 2)), conv2d(x, d, 2, \"valid\", 4) ^ 2)",
    "def f(x: [1, 4, 4, 4], k: [2, 2, 2, 6], g: [1, 2, 2, 6]) = (conv2d_transpose_input(g, k, (1, 4, 4, 4), 2, \"same\", 2) ^ 2, conv2d_transpose_kernel(x, g, (2, 2, 2, 6), 2, \"same\", 2) ^ 2)",
    "def c(x, k) = tanh(conv2d(x, k, 1, \"same\"))\ndef f(x: [3, 1, 4, 3, 2], k: [3, 2, 2, 2, 2], s: [1, 4, 3, 2]) = (vmap(c)(x, k), vmap(k => c(s, k))(k * s[0, 0, 0, 0]))",
    // Convolutions with strong zeros (the NaN-safe derivatives' form), in groups.
    "def f(x: [1, 4, 4, 4], k: [2, 2, 2, 6], g: [1, 2, 2, 6]) = (tanh(safe_conv2d(x, k, 2, \"same\", 2)), safe_conv2d_transpose_input(g, k, (1, 4, 4, 4), 2, \"same\", 2) ^ 2, safe_conv2d_transpose_kernel(x, g, (2, 2, 2, 6), 2, \"same\", 2) ^ 2)",
    "def f(x: [2, 4, 4, 3], t: [2, 4, 4, 3], c: [2, 2, 2, 3]) = (max_pool2d(x ^ 2, 2), max_pool2d(x, 3, 1) * 2, max_pool2d_pick(x, t, 2, 2) ^ 2, max_pool2d_scatter(x, c, 2, 2) ^ 2)",
    "def f(x: [2, 4, 4, 3], c: [2, 2, 2, 3]) = (avg_pool2d(x ^ 2, 2), avg_pool2d(x, 3, 1), avg_pool2d_transpose(c, (2, 4, 4, 3), 2, 2) ^ 2)",
];
