"""Writes tests/golden/lang/library_values.ad: the library's elementwise functions at points
across their domains against mpmath at 60 digits, rounded to doubles. With an argument it
writes /tmp/lib/ulps.ad instead, which prints each function's largest relative error in
units of 2^-52 (the figures in the book's reference). Needs numpy and mpmath."""
import numpy as np, mpmath as mp
mp.mp.dps = 60
rng = np.random.default_rng(7)
def pts(lo, hi, n=12, edge=1e-9):
    return np.concatenate([rng.uniform(lo, hi, n), np.array([lo + edge * max(1, abs(lo)), hi - edge * max(1, abs(hi))])])
M = lambda f: (lambda *a: np.array([float(f(*[mp.mpf(float(v)) for v in vs])) for vs in zip(*a)]))
def mod(x, y):
    r = mp.fmod(x, y)
    return r + y if r != 0 and (r < 0) != (y < 0) else r
cases = [
 ("tan", M(mp.tan), pts(-1.5, 1.5)), ("asin", M(mp.asin), pts(-1, 1)), ("acos", M(mp.acos), pts(-1, 1)),
 ("atan", M(mp.atan), pts(-50, 50)), ("sinh", M(mp.sinh), pts(-20, 20)), ("cosh", M(mp.cosh), pts(-20, 20)),
 ("asinh", M(mp.asinh), pts(-100, 100)), ("acosh", M(mp.acosh), pts(1, 100)), ("atanh", M(mp.atanh), pts(-1, 1)),
 ("log1p", M(mp.log1p), np.concatenate([pts(-0.9, 10), [1e-12, -1e-12]])), ("expm1", M(mp.expm1), np.concatenate([pts(-20, 20), [1e-12, -1e-12]])),
 ("log2", M(lambda x: mp.log(x, 2)), pts(1e-3, 1e3)), ("log10", M(mp.log10), pts(1e-3, 1e3)), ("exp2", M(lambda x: mp.power(2, x)), pts(-30, 30)),
 ("erf", M(mp.erf), pts(-5, 5)), ("erfc", M(mp.erfc), pts(-5, 26)), ("cbrt", M(lambda x: mp.sign(x) * mp.cbrt(abs(x))), pts(-1e3, 1e3)),
]
binary = [("hypot", M(mp.hypot), pts(-1e3, 1e3), pts(-1e3, 1e3)),
          ("mod", M(mod), pts(-20, 20), np.array([3, -3, 0.7, -0.7, 2.5, 5, -5, 1.1, 9, -9, 4, 2, 0.3, -0.3])),
          ("logaddexp", M(lambda a, b: mp.log(mp.exp(a) + mp.exp(b))), pts(-800, 800), pts(-800, 800))]
def arr(v): return "[" + ", ".join(repr(float(x)) for x in v) + "]"
import sys
ulps = len(sys.argv) > 1
out = ["#! run -> stdout",
"# The library's elementwise functions against reference values computed with mpmath at",
"# 60 digits and rounded to the nearest double, at points across each domain (and near",
"# its ends): each line is the function and whether every value is within 2 ulp (relative",
"# error at most 2 · 2^-52) of the reference; the book gives the measured errors. Made by",
"# tests/data/library/make_library_values.py.",
"def within(y, r) = amax(abs(y - r) / max(abs(r), 1e-300)) <= 2 * 2.220446049250313e-16" if not ulps else
"def within(y, r) = amax(abs(y - r) / max(abs(r), 1e-300)) / 2.220446049250313e-16"]
for name, f, x in cases:
    out.append(f'print("{name}", within({name}({arr(x)}), {arr(f(x))}))')
for name, f, x, y in binary:
    out.append(f'print("{name}", within({name}({arr(x)}, {arr(y)}), {arr(f(x, y))}))')
out.append('print("round", round([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999999999999996, 1e300]), floor([-1.5, 1.5]), ceil([-1.5, 1.5]), trunc([-1.7, 1.7]))')
path = "/tmp/lib/ulps.ad" if ulps else "/work/main/tests/golden/lang/library_values.ad"
open(path, "w").write("\n".join(out) + "\n")
