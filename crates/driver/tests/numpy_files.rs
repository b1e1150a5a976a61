//! NumPy files: fixtures written by NumPy (`tests/data/numpy/`, made by
//! `make_fixtures.py` there) read back equal; what AD writes is byte for byte what NumPy
//! writes for the same array; `.npz` archives in both directions; damaged, truncated,
//! hostile and foreign files are errors with a message, never a panic.

use ad_driver::npy;
use ad_driver::{Session, SharedBuf};
use ad_ir::lower::io_effects::FileShapes;
use ad_ir::lower::value::{Arr, LVal};
use ad_ir::{Array, Shape};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/numpy").join(name).display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-numpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn array(v: &LVal) -> Array {
    match v {
        LVal::Arr(Arr::Val(a)) => a.clone(),
        other => panic!("not an array: {other:?}"),
    }
}

fn read(name: &str) -> Array {
    array(&npy::load(&fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn read_err(path: &str) -> String {
    match npy::load(path, None) {
        Ok(v) => panic!("{path} was read: {v:?}"),
        Err(e) => e,
    }
}

/// The matrix most fixtures hold: `np.arange(6).reshape(2, 3) * 0.5 - 1`.
const M: [f64; 6] = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5];

#[test]
fn float_files_read_back_equal() {
    let m = read("f64_matrix.npy");
    assert_eq!(m.shape(), Shape::matrix(2, 3));
    assert_eq!(m.data(), M);
    let s = read("f64_scalar.npy");
    assert_eq!((s.shape(), s.data()), (Shape::scalar(), &[2.5][..]));
    let v = read("f64_vector.npy");
    assert_eq!(v.data(), [1.0, -2.5, 3.25, 1e-300, f64::INFINITY]);
    let e = read("f64_empty.npy");
    assert_eq!((e.shape(), e.data().len()), (Shape::matrix(0, 3), 0));
    // Fortran order is transposed into rows; big-endian bytes are swapped; float32 widened.
    for name in ["f64_fortran.npy", "f64_big_endian.npy", "f32_matrix.npy"] {
        let a = read(name);
        assert_eq!((a.shape(), a.data()), (Shape::matrix(2, 3), &M[..]), "{name}");
    }
}

#[test]
fn integer_and_bool_files_read_as_f64() {
    assert_eq!(read("i64_vector.npy").data(), [-3.0, 0.0, 7.0, 1099511627776.0]);
    assert_eq!(read("i16_vector.npy").data(), [-32768.0, 5.0]);
    assert_eq!(read("u8_vector.npy").data(), [0.0, 1.0, 255.0]);
    assert_eq!(read("bool_vector.npy").data(), [1.0, 0.0, 1.0]);
    let f = read("i32_fortran.npy");
    assert_eq!((f.shape(), f.data()), (Shape::matrix(2, 3), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0][..]));
}

#[test]
fn archives_read_in_order_and_by_name() {
    let two = npy::load(&fixture("two.npz"), None).unwrap();
    let LVal::Tuple(items) = &two else { panic!("{two:?}") };
    assert_eq!(items.len(), 2);
    assert_eq!(array(&items[0]).data(), M);
    assert_eq!(array(&items[1]).data(), [1.0, 2.0]);
    let bias = array(&npy::load(&fixture("named.npz"), Some("bias")).unwrap());
    assert_eq!(bias.data(), [0.5, -0.5, 1.0]);
    let named = npy::load(&fixture("named.npz"), None).unwrap();
    assert_eq!(named.display(6), "([[-1,   -0.5,  0  ],\n [0.5,  1,     1.5]], [0.5, -0.5, 1])");
    let compressed = npy::load(&fixture("compressed.npz"), Some("arr_1")).unwrap();
    assert_eq!(array(&compressed).data(), [0.0, 1.0, 2.0, 3.0]);
    let e = npy::load(&fixture("named.npz"), Some("bais")).unwrap_err();
    assert!(e.ends_with("has no array named `bais`; it has `weights`, `bias`"), "{e}");
}

#[test]
fn headers_give_shapes_without_the_data() {
    assert_eq!(
        npy::shapes(&fixture("f64_fortran.npy"), None).unwrap(),
        FileShapes::Array(Shape::matrix(2, 3))
    );
    assert_eq!(
        npy::shapes(&fixture("named.npz"), None).unwrap(),
        FileShapes::Tuple(vec![Shape::matrix(2, 3), Shape::vector(3)])
    );
    assert_eq!(
        npy::shapes(&fixture("compressed.npz"), Some("arr_1")).unwrap(),
        FileShapes::Array(Shape::vector(4))
    );
}

#[test]
fn our_files_are_numpys_bytes() {
    let cases = [
        ("f64_matrix.npy", Array::new(Shape::matrix(2, 3), M.to_vec())),
        ("f64_scalar.npy", Array::scalar(2.5)),
        ("f64_vector.npy", Array::new(Shape::vector(5), vec![1.0, -2.5, 3.25, 1e-300, f64::INFINITY])),
        ("f64_empty.npy", Array::new(Shape::matrix(0, 3), vec![])),
    ];
    for (name, a) in cases {
        let ours = npy::npy_bytes(&a).unwrap();
        let numpys = std::fs::read(fixture(name)).unwrap();
        assert_eq!(ours, numpys, "{name}: AD writes other bytes than NumPy");
    }
}

#[test]
fn saved_archives_hold_numpys_members() {
    let path = scratch("pair.npz").display().to_string();
    let a = LVal::array(Array::new(Shape::matrix(2, 3), M.to_vec()));
    let b = LVal::array(Array::new(Shape::vector(2), vec![1.0, 2.0]));
    npy::save(&path, &LVal::Tuple(vec![a, b].into())).unwrap();
    // Each member is the bytes `numpy.savez` stored for the same arrays.
    let mut ours = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut numpys = zip::ZipArchive::new(std::fs::File::open(fixture("two.npz")).unwrap()).unwrap();
    assert_eq!(ours.file_names().collect::<Vec<_>>(), ["arr_0.npy", "arr_1.npy"]);
    for name in ["arr_0.npy", "arr_1.npy"] {
        let mut x = Vec::new();
        let mut y = Vec::new();
        std::io::Read::read_to_end(&mut ours.by_name(name).unwrap(), &mut x).unwrap();
        std::io::Read::read_to_end(&mut numpys.by_name(name).unwrap(), &mut y).unwrap();
        assert_eq!(x, y, "{name}");
    }
    // And it reads back.
    let back = npy::load(&path, None).unwrap();
    assert_eq!(back.display(6), "([[-1,   -0.5,  0  ],\n [0.5,  1,     1.5]], [1, 2])");
}

/// True when AD's arrays may have rank 3 (the core is growing from rank 2 to any rank).
fn rank3_supported() -> bool {
    ad_ir::prim::checked_shape(&[2, 3, 4]).is_ok()
}

#[test]
fn ranks_past_two_read_where_arrays_have_them() {
    let t: Vec<f64> = (0..24).map(f64::from).collect();
    for name in ["rank3.npy", "rank3_fortran.npy"] {
        if rank3_supported() {
            // Fortran order reverses the axes' strides: read back, it is the same array.
            let a = read(name);
            assert_eq!(a.shape().dims(), [2, 3, 4], "{name}");
            assert_eq!(a.data(), t, "{name}");
        } else {
            let e = read_err(&fixture(name));
            assert!(
                e.contains("holds an array of shape [2, 3, 4]: arrays have rank at most 2, not 3"),
                "{e}"
            );
        }
    }
    let e = read_err(&fixture("rank9.npy"));
    assert!(
        e.contains("holds an array of shape [1, 1, 1, 1, 1, 1, 1, 1, 1]: arrays have rank at most"),
        "{e}"
    );
    assert!(e.ends_with("not 9"), "{e}");
}

#[test]
fn unreadable_files_are_errors() {
    let e = read_err(&fixture("complex.npy"));
    assert!(
        e.contains("holds values of type `<c16`; AD reads float64, float32, integer and bool arrays"),
        "{e}"
    );
    let e = read_err(&fixture("strings.npy"));
    assert!(e.contains("holds values of type `<U2`"), "{e}");
    let e = read_err("/nonexistent/x.npy");
    assert_eq!(e, "cannot read `/nonexistent/x.npy`: No such file or directory");

    let good = std::fs::read(fixture("f64_matrix.npy")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = scratch(name).display().to_string();
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // Truncated in the data, in the header, in the preamble; empty.
    let e = read_err(&write("short.npy", &good[..good.len() - 5]));
    assert!(e.contains("is truncated or damaged"), "{e}");
    let e = read_err(&write("header.npy", &good[..40]));
    assert!(e.contains("the file ends inside its header"), "{e}");
    let e = read_err(&write("pre.npy", &good[..8]));
    assert!(e.contains("the file ends inside its header"), "{e}");
    let e = read_err(&write("empty.npy", b""));
    assert!(e.contains("is not a NumPy file"), "{e}");
    let e = read_err(&write("text.npy", b"1,2,3\n"));
    assert!(e.contains("is not a NumPy file: it starts with neither"), "{e}");
    // A zip header on something that is not an archive; an archive of other things.
    let e = read_err(&write("fake.npz", b"PK\x03\x04 and then nothing"));
    assert!(e.contains("is not a valid .npz file"), "{e}");
    let e = read_err(&write("truncated.npz", &std::fs::read(fixture("two.npz")).unwrap()[..300]));
    assert!(e.contains("is not a valid .npz file"), "{e}");

    // Hostile headers: a shape whose size overflows, one past the memory budget, a huge
    // header length, deep nesting, a negative dimension, no dictionary.
    let npy = |header: &str| {
        let mut text = header.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(&[0u8; 64]);
        b
    };
    let e = read_err(&write(
        "overflow.npy",
        &npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"),
    ));
    assert!(e.contains("rank at most 2") || e.contains("is too large"), "{e}");
    let e = read_err(&write(
        "budget.npy",
        &npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
    ));
    assert!(e.contains("is too large"), "{e}");
    let e = read_err(&write("deep.npy", &npy(&"(".repeat(5000))));
    assert!(e.contains("nests too deeply"), "{e}");
    let e =
        read_err(&write("negative.npy", &npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }")));
    assert!(e.contains("its shape has the dimension -1"), "{e}");
    let e = read_err(&write("list.npy", &npy("[1, 2]")));
    assert!(e.contains("its header is not a dictionary"), "{e}");
    let e = read_err(&write("garbage.npy", &npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), ")));
    assert!(e.contains("its header is not a Python literal"), "{e}");
    let mut long = b"\x93NUMPY\x02\x00".to_vec();
    long.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = read_err(&write("long.npy", &long));
    assert!(e.contains("its header is 4294967295 bytes long"), "{e}");
    let e = read_err(&write("version.npy", b"\x93NUMPY\x09\x00\x10\x00{}"));
    assert!(e.contains("unknown format version 9"), "{e}");
    let e = read_err(&write("dtype.npy", &npy("{'descr': '<q9', 'fortran_order': False, 'shape': (1,), }")));
    assert!(e.contains("is not a valid .npy file"), "{e}");
}

/// Through the language: `load` and `save` at the top level, and `ad check` knowing the
/// shapes of loaded files.
#[test]
fn load_and_save_in_scripts() {
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    let out = scratch("w.npz").display().to_string();
    let src = format!(
        "let (W, b) = load({:?})\nprint(shape(W), b)\nsave({out:?}, (W * 2, b))\nprint(load({out:?}, \"arr_1\"))\nsave({:?}, W')\nprint(load({:?}))",
        fixture("named.npz"),
        scratch("wt.npy").display().to_string(),
        scratch("wt.npy").display().to_string(),
    );
    s.run_source("s.ad", &src).unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    assert_eq!(
        buf.take(),
        "(2, 3) [0.5, -0.5, 1]\n[0.5, -0.5, 1]\n[[-1,    0.5],\n [-0.5,  1  ],\n [0,     1.5]]\n"
    );

    // Checking reads headers: `W @ ones(2)` is a shape error found without running.
    let errors =
        s.check_source("c.ad", &format!("let (W, b) = load({:?})\nprint(W @ ones(2))", fixture("named.npz")));
    let text = ad_syntax::render(&s.sources, &errors, false);
    assert!(text.contains("[2, 3]") && text.contains("[2]"), "{text}");
    // A file the script saves has the shape it was saved with, even before it exists.
    let fresh = scratch("not-yet.npz").display().to_string();
    let errors = s.check_source(
        "c2.ad",
        &format!("save({fresh:?}, (zeros((4, 2)), ones(3)))\nlet v = load({fresh:?}, \"arr_1\")\nprint(v @ ones(3))\nprint(load({fresh:?})[0] @ ones(3))"),
    );
    let text = ad_syntax::render(&s.sources, &errors, false);
    assert!(text.contains("c2.ad:4") && text.contains("[4, 2]"), "{text}");
    assert!(!Path::new(&fresh).exists(), "checking wrote a file");
    // Errors are located at the call.
    let e =
        s.run_source("e.ad", &format!("let x = 1\nlet y = load({:?})", fixture("rank9.npy"))).unwrap_err();
    let text = ad_syntax::render(&s.sources, &e, false);
    assert!(text.contains("e.ad:2:9") && text.contains("not 9"), "{text}");
    let e = s.run_source("e2.ad", "save(\"x.txt\", 1)").unwrap_err();
    let text = ad_syntax::render(&s.sources, &e, false);
    assert!(text.contains("`save` writes NumPy files (.npy or .npz), not `x.txt`"), "{text}");
    let e = s.run_source("e3.ad", "save(\"/nonexistent/x.npy\", 1)").unwrap_err();
    let text = ad_syntax::render(&s.sources, &e, false);
    assert!(text.contains("cannot write `/nonexistent/x.npy`: No such file or directory"), "{text}");
}
