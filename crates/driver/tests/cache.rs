//! A top-level training loop lowers and derives its functions once: later iterations reuse
//! the specialisations (DESIGN §4).

use ad_driver::Session;
use ad_driver::SharedBuf;

#[test]
fn training_loops_do_not_re_lower() {
    let src = "
seed(0)
let X = randn((16, 2))
let Y = sin(X[:, :1])
def loss(params, X, Y) {
  let (W1, b1, W2, b2) = params
  let out = tanh(X @ W1 + b1) @ W2 + b2
  sum((out - Y) ^ 2) / rows(X)
}
let params = (randn((2, 8)), zeros(8), randn((8, 1)), zeros(1))
let lr = 0.1
for step in 0..200 {
  params = params - lr * grad(loss)(params, X, Y)
  lr = lr * 0.999
}
print(loss(params, X, Y))
";
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("train.ad", src).unwrap();
    // grad(loss) once, and loss once for the final print.
    assert_eq!(s.lowerings(), 2);
}

#[test]
fn a_new_shape_or_a_changed_global_specialises_again() {
    let src = "
let scale = 2
def f(x) = sum(x * scale)
print(f([1, 2]), f([1, 2, 3]))
print(f([3, 4]))
scale = [1, 2]
print(f([3, 4]))
";
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    s.run_source("spec.ad", src).unwrap();
    assert_eq!(buf.take(), "6 12\n14\n11\n");
    // [2], [3], then [2] again after `scale` changed from a number to a vector.
    assert_eq!(s.lowerings(), 3);
}

/// Two imported files each have a `w` (of different shapes) and a function reading it; the
/// script binds a `w` of its own and changes it. Each function reads its own file's `w`,
/// specialisations are reused across calls, and a change to the script's `w` makes none of
/// them invalid (the same name in another scope is another dependency).
#[test]
fn the_same_name_in_two_files_is_two_dependencies() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-cache-scopes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.ad"), "let w = 2\ndef fa(x) = sum(x * w)\n").unwrap();
    std::fs::write(dir.join("b.ad"), "let w = [10, 20]\ndef fb(x) = sum(x * w)\n").unwrap();
    let src = "
import \"a.ad\"
import \"b.ad\"
let w = 1000
def fm(x) = sum(x * w)
for i in 0..3 {
  print(fa([1, 2]), fb([1, 2]), fm([1, 2]))
}
w = [1, 1]
print(fa([1, 2]), fb([1, 2]), fm([1, 2]))
print(grad(x => fa(x) + fb(x))([1, 2]))
";
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    let main = dir.join("main.ad");
    if let Err(e) = s.run_source(&main.to_string_lossy(), src) {
        panic!("{}", ad_syntax::render(&s.sources, &e, false));
    }
    assert_eq!(buf.take(), "6 50 3000\n6 50 3000\n6 50 3000\n6 50 3\n[12, 22]\n");
    // fa, fb and fm once each; fm again after the script's `w` changed shape; the gradient.
    assert_eq!(s.lowerings(), 5);
}
