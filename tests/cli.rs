//! The command line: exit statuses, options, and bad input that must end in a located
//! message and status 1, never a panic.

use std::io::Write;
use std::process::{Command, Output};

fn ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ad")).args(args).output().expect("the ad binary runs")
}

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().write_all(contents).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a script given as text; returns the output.
fn run_text(name: &str, text: &str) -> Output {
    let p = temp_file(name, text.as_bytes());
    ad(&["run", p.to_str().unwrap()])
}

#[test]
fn runs_a_script() {
    let o = run_text("ok.ad", "print(1 + 2)\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3\n");
}

#[test]
fn precision_option() {
    let p = temp_file("prec.ad", b"print(1 / 3, [pi, 2 / 3])\n");
    let o = ad(&["run", p.to_str().unwrap(), "--precision", "3"]);
    assert_eq!(stdout(&o), "0.333 [3.14, 0.667]\n");
    let o = ad(&["run", p.to_str().unwrap(), "--precision", "17"]);
    assert_eq!(stdout(&o), "0.33333333333333331 [3.1415926535897931, 0.66666666666666663]\n");
    let o = ad(&["run", p.to_str().unwrap(), "--precision", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(ad(&["run"]).status.code(), Some(2));
    assert_eq!(ad(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ad(&["derive", "nonsense", "f.ad", "f"]).status.code(), Some(2));
    assert_eq!(ad(&["derive", "ir", "f.ad", "f", "--shape", "x=3"]).status.code(), Some(2));
}

#[test]
fn missing_file() {
    // A script that cannot be read is bad usage (DESIGN §5), for every command.
    let o = ad(&["run", "/no/such/file.ad"]);
    assert_eq!(o.status.code(), Some(2));
    for cmd in [&["check", "/no/such/file.ad"][..], &["derive", "ir", "/no/such/file.ad", "f"]] {
        assert_eq!(ad(cmd).status.code(), Some(2), "{cmd:?}");
    }
    assert!(
        stderr(&o).contains("cannot read `/no/such/file.ad`: No such file or directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn program_errors_exit_1_with_location() {
    let o = run_text("shape.ad", "let a = [1, 2]\nprint(a + [1, 2, 3])\n");
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("shape.ad:2:7"), "{e}");
    assert!(e.contains("[2] and [3]"), "{e}");
    // Not a terminal: no colour codes.
    assert!(!e.contains('\u{1b}'), "{e}");
}

#[test]
fn garbage_bytes() {
    let p = temp_file("garbage.ad", b"let x = 1\n\x01\x02\xff\xfe garbage \x80\nprint(x)\n");
    let o = ad(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("garbage.ad:2:1"), "{e}");
    let o = ad(&["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn binary_noise_never_panics() {
    // A deterministic pseudo-random byte soup, including every byte value.
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    let mut x: u32 = 12345;
    for _ in 0..4000 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        bytes.push((x >> 16) as u8);
    }
    let p = temp_file("noise.ad", &bytes);
    let o = ad(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("noise.ad:"), "{}", stderr(&o));
}

#[test]
fn unterminated_string() {
    let o = run_text("unterminated.ad", "print(\"abc\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unterminated string"), "{}", stderr(&o));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("print({}1{})\n", "(".repeat(3000), ")".repeat(3000));
    let o = run_text("deep.ad", &text);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("too deep"), "{}", stderr(&o));
}

#[test]
fn long_operator_chains() {
    // A flat chain is a deep tree after parsing: 400 terms work, 20,000 are refused with
    // a located message (the parser bounds the depth of every statement's tree).
    let text = format!("print({})\n", vec!["1"; 400].join(" + "));
    let o = run_text("chain.ad", &text);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "400\n");
    let text = format!("print({})\n", vec!["1"; 20000].join(" + "));
    let o = run_text("long_chain.ad", &text);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("long_chain.ad:1:"), "{}", stderr(&o));
}

#[test]
fn absurd_sizes_are_refused() {
    for (name, text) in [
        ("zeros.ad", "let z = zeros((1e8, 1e8))\n"),
        ("outer.ad", "let a = zeros((100000, 1))\nlet b = a + zeros(100000)\n"),
        ("eye.ad", "let e = eye(1e9)\n"),
        ("neg.ad", "let z = zeros(-3)\n"),
    ] {
        let o = run_text(name, text);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("{name}:")), "{name}: {}", stderr(&o));
    }
}

#[test]
fn ragged_and_bad_indices() {
    for (name, text, needle) in [
        ("ragged.ad", "let a = [[1, 2], [3]]\n", "ragged"),
        ("nonint.ad", "let a = [1, 2]\nprint(a[0.5])\n", "integer"),
        ("range.ad", "let a = [1, 2]\nprint(a[-3])\n", "out of range"),
        ("csv.ad", "let d = read_csv(\"/no/such.csv\")\n", "cannot read"),
    ] {
        let o = run_text(name, text);
        assert_eq!(o.status.code(), Some(1), "{name}");
        let e = stderr(&o);
        assert!(e.contains(needle) && e.contains(&format!("{name}:")), "{name}: {e}");
    }
}

#[test]
fn check_does_not_run() {
    let o = run_text("check_ok.ad", "print(\"ran\")\n");
    assert_eq!(stdout(&o), "ran\n");
    let p = temp_file("check.ad", b"print(\"ran\")\nlet a = randn((3, 2))\nlet b = a @ ones(3)\n");
    let o = ad(&["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("check.ad:3:9"), "{}", stderr(&o));
    let p = temp_file("check2.ad", b"def f(x: [3]) = x @ ones(4)\n");
    let o = ad(&["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "an annotated def is checked even if never called");
    let p = temp_file("check3.ad", b"let x = randn(3)\nwhile sum(x) > 0 { x = x - 1 }\nprint(x)\n");
    assert_eq!(ad(&["check", p.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn derive_ir_prints_a_runnable_program() {
    let p = temp_file(
        "layer.ad",
        b"def layer(W: [n, m], b: [m], x: [k, n]) {\n  let z = x @ W + b\n  tanh(z)\n}\n",
    );
    let o = ad(&[
        "derive",
        "ir",
        p.to_str().unwrap(),
        "layer",
        "--shape",
        "n=[3]",
        "--shape",
        "m=[2]",
        "--shape",
        "x=[4,3]",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "def layer(W: [3, 2], b: [2], x: [4, 3]) {\n  let z = x @ W + b\n  tanh(z)\n}\n");
    let o = ad(&["derive", "ir", p.to_str().unwrap(), "layer"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the dimension `n` is not known"), "{}", stderr(&o));
    let o = ad(&["derive", "ir", p.to_str().unwrap(), "layr"]);
    assert!(stderr(&o).contains("did you mean `layer`"), "{}", stderr(&o));
}

#[test]
fn derive_vmap_takes_a_batch_size() {
    let p = temp_file("vmapped.ad", b"def f(x: [3], w: [3, 2]) = tanh(x @ w)\n");
    let path = p.to_str().unwrap();
    let o = ad(&["derive", "vmap", path, "f", "--batch", "16"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "def f_vmap(x: [16, 3], w: [16, 3, 2]) = tanh(reshape(reshape(x, (16, 1, 3)) @ w, (16, 2)))\n"
    );
    // Without `--batch` the batch has 4 elements; 0 is a bad argument.
    assert!(stdout(&ad(&["derive", "vmap", path, "f"])).contains("x: [4, 3]"));
    assert_eq!(ad(&["derive", "vmap", path, "f", "--batch", "0"]).status.code(), Some(2));
}

#[test]
fn derive_vmap_takes_in_axes() {
    let f = "def f(x: [3], w: [3, 2]) = tanh(x @ w)\n";
    let p = temp_file("in_axes.ad", f.as_bytes());
    let path = p.to_str().unwrap();
    // `none` shares a parameter; a single value maps every parameter.
    let o = ad(&["derive", "vmap", path, "f", "--in-axes", "none,0", "--batch", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("def f_vmap(x: [3], w: [2, 3, 2])"), "{}", stdout(&o));
    // Axes other than the first: the printed program takes the batch where it is, and
    // computes what `vmap(f, (1, -1))` computes.
    let o = ad(&["derive", "vmap", path, "f", "--in-axes", "1,-1", "--batch", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(printed.starts_with("def f_vmap(x: [3, 5], w: [3, 2, 5])"), "{printed}");
    let check = format!(
        "{f}{printed}let x = reshape(sin(arange(15)), (3, 5))\nlet w = reshape(cos(arange(30)), (3, 2, 5))\n\
         print(amax(abs(f_vmap(x, w) - vmap(f, (1, -1))(x, w))))\n"
    );
    let o = run_text("in_axes_check.ad", &check);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "0\n"), "{}", stderr(&o));
    // Bad axes are errors in the program (exit 1); bad values and other modes are bad
    // arguments (exit 2).
    let o = ad(&["derive", "vmap", path, "f", "--in-axes", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`--in-axes` maps axis 3 of `x`, whose batched shape [4, 3] has 2 axes"),
        "{}",
        stderr(&o)
    );
    let o = ad(&["derive", "vmap", path, "f", "--in-axes", "none"]);
    assert!(stderr(&o).contains("all `--in-axes` are `none`"), "{}", stderr(&o));
    let o = ad(&["derive", "vmap", path, "f", "--in-axes", "0,0,0"]);
    assert!(stderr(&o).contains("gives 3 axes for a function of 2 parameters"), "{}", stderr(&o));
    assert_eq!(ad(&["derive", "vmap", path, "f", "--in-axes", "x"]).status.code(), Some(2));
    assert_eq!(ad(&["derive", "grad", path, "f", "--in-axes", "0"]).status.code(), Some(2));
}

#[test]
fn derive_takes_shapes_of_any_rank() {
    let p = temp_file("rank4.ad", b"def f(x) = sum(conv2d(x, ones((2, 2, 3, 1))))\n");
    let o = ad(&["derive", "grad", p.to_str().unwrap(), "f", "--shape", "x=[1,4,4,3]"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("def f_grad(x: [1, 4, 4, 3])"), "{}", stdout(&o));
    let o = ad(&["derive", "grad", p.to_str().unwrap(), "f", "--shape", "x=[1,1,1,1,1,1,1,1,1]"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("rank at most 8"), "{}", stderr(&o));
}
