//! Plotting: the SVG a figure is saved as (parsed as XML, the series' points read back),
//! PNG files, the terminal rendering (compared with snapshots in `snapshots/`;
//! `UPDATE_EXPECT=1` rewrites them), silence off a terminal, and the errors.

use ad_driver::plot::terminal::Size;
use ad_driver::plot::Screen;
use ad_driver::{Session, SharedBuf};
use std::path::{Path, PathBuf};

fn session(screen: Option<Screen>) -> (Session, SharedBuf) {
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    s.set_screen(screen);
    (s, buf)
}

fn run(s: &mut Session, src: &str) {
    if let Err(e) = s.run_source("test.ad", src) {
        panic!("{}", ad_syntax::render(&s.sources, &e, false));
    }
}

fn error(s: &mut Session, src: &str) -> String {
    match s.run_source("test.ad", src) {
        Ok(()) => panic!("no error for {src}"),
        Err(e) => ad_syntax::render(&s.sources, &e, false),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The polylines of an SVG document that draw series (the axes and the grid are thinner),
/// as lists of pixel coordinates.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.tag_name().name() == "polyline" && n.attribute("stroke-width") == Some("2"))
        .map(|n| {
            n.attribute("points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// Checks that pixel coordinates are an affine image of data values, `p = a + b v` with
/// `b` of the given sign, to within a pixel (plotters rounds to whole pixels).
fn assert_affine(values: &[f64], pixels: &[f64], increasing: bool) {
    assert_eq!(values.len(), pixels.len());
    let n = values.len() as f64;
    let (mv, mp) = (values.iter().sum::<f64>() / n, pixels.iter().sum::<f64>() / n);
    let cov: f64 = values.iter().zip(pixels).map(|(v, p)| (v - mv) * (p - mp)).sum();
    let var: f64 = values.iter().map(|v| (v - mv) * (v - mv)).sum();
    let b = cov / var;
    let a = mp - b * mv;
    assert_eq!(b > 0.0, increasing, "pixels {pixels:?} for values {values:?}");
    for (v, p) in values.iter().zip(pixels) {
        assert!((a + b * v - p).abs() <= 1.0, "pixel {p} is not where {v} belongs ({})", a + b * v);
    }
}

#[test]
fn svg_holds_the_series_points() {
    let (mut s, buf) = session(None);
    let path = scratch("line.svg");
    let ys = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0];
    run(
        &mut s,
        &format!(
            "plot([3, 1, 4, 1.5, 5, 9, 2, 6])\nplot([0, 7], [1, 2])\ntitle(\"digits\")\nxlabel(\"index\")\nylabel(\"value\")\nsavefig({:?})",
            path.display().to_string()
        ),
    );
    assert_eq!(buf.take(), "", "savefig prints nothing");
    let svg = std::fs::read_to_string(&path).unwrap();
    let lines = polylines(&svg);
    assert_eq!(lines.len(), 2, "one polyline per series");
    // plot(y) puts y[i] at x = i: evenly spaced columns, rows an affine image of y (SVG
    // rows grow downwards).
    let xs: Vec<f64> = (0..ys.len()).map(|i| i as f64).collect();
    assert_affine(&xs, &lines[0].iter().map(|p| p.0).collect::<Vec<_>>(), true);
    assert_affine(&ys, &lines[0].iter().map(|p| p.1).collect::<Vec<_>>(), false);
    // The second series shares the axes: x = 7 is where the first series' x = 7 is.
    assert_eq!(lines[1].len(), 2);
    assert!((lines[1][1].0 - lines[0][7].0).abs() <= 1.0);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for text in ["digits", "index", "value"] {
        assert!(texts.contains(&text), "the SVG lacks the text {text}: {texts:?}");
    }
    // The two series have different colours.
    let strokes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline" && n.attribute("stroke-width") == Some("2"))
        .filter_map(|n| n.attribute("stroke"))
        .collect();
    assert_eq!(strokes.len(), 2);
    assert_ne!(strokes[0], strokes[1]);
}

#[test]
fn scatter_hist_and_image_in_svg() {
    let (mut s, _) = session(None);
    let (a, b, c) = (scratch("scatter.svg"), scratch("hist.svg"), scratch("image.svg"));
    run(
        &mut s,
        &format!(
            "scatter([1, 2, 3], [3, 1, 2])\nsavefig({:?})\nhist([1, 2, 2, 3, 3, 3], 3)\nsavefig({:?})\nimshow([[0, 1], [2, 3]])\nsavefig({:?})",
            a.display().to_string(),
            b.display().to_string(),
            c.display().to_string()
        ),
    );
    let count = |path: &Path, tag: &str| {
        let svg = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        doc.descendants().filter(|n| n.tag_name().name() == tag).count()
    };
    assert_eq!(count(&a, "circle"), 3);
    assert_eq!(polylines(&std::fs::read_to_string(&a).unwrap()).len(), 0);
    // Three bars, each filled and outlined, above the background rectangle.
    let bars = count(&b, "rect");
    assert!(bars >= 6, "{bars} rectangles");
    // Bar heights: the counts 1, 2, 3 are an affine image of the bars' heights.
    let svg = std::fs::read_to_string(&b).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let mut heights: Vec<f64> = doc
        .descendants()
        .filter(|n| {
            n.tag_name().name() == "rect"
                && n.attribute("fill").is_some_and(|f| f != "none" && f != "#FFFFFF")
        })
        .map(|n| n.attribute("height").unwrap().parse::<f64>().unwrap())
        .collect();
    heights.sort_by(f64::total_cmp);
    assert_eq!(heights.len(), 3, "{heights:?}");
    assert!(
        (heights[1] / heights[0] - 2.0).abs() < 0.05 && (heights[2] / heights[0] - 3.0).abs() < 0.05,
        "{heights:?}"
    );
    // An image: one rectangle per cell, coloured from dark to light.
    assert!(count(&c, "rect") >= 4);
}

#[test]
fn png_is_written() {
    let (mut s, _) = session(None);
    let path = scratch("loss.png");
    run(&mut s, &format!("plot([1, 0.5, 0.25])\ntitle(\"loss\")\nsavefig({:?})", path.display().to_string()));
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG file");
    assert!(bytes.len() > 2000, "a PNG of {} bytes", bytes.len());
}

#[test]
fn nothing_is_printed_off_a_terminal() {
    let (mut s, buf) = session(None);
    run(&mut s, "plot([1, 2, 3])\nshow()\nhist(randn(100))\nshow()\nimshow(eye(3))\nshow()\nprint(\"data\")");
    s.show_pending();
    assert_eq!(buf.take(), "data\n");
}

fn check_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {} (UPDATE_EXPECT=1 writes it)", path.display()));
    assert_eq!(actual, expected, "the terminal rendering differs from {}", path.display());
}

#[test]
fn terminal_rendering_matches_the_snapshot() {
    let screen = Screen { color: false, size: Size::default() };
    let (mut s, buf) = session(Some(screen));
    run(
        &mut s,
        "let x = linspace(0, 6.28, 60)\nplot(x, sin(x))\nscatter([1, 3, 5], [0.5, -0.5, 0])\ntitle(\"sine\")\nxlabel(\"x\")\nylabel(\"sin(x)\")\nshow()",
    );
    let lines = buf.take();
    check_snapshot("terminal_line.txt", &lines);
    // Braille characters, the title, the labels and the axis ranges are drawn.
    assert!(lines.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "{lines}");
    assert!(lines.starts_with(&format!("{}sine\n", " ".repeat(28))), "{lines}");
    assert!(lines.contains("6.28") && lines.contains("-0.9996") && lines.contains("sin(x)\n"), "{lines}");
    assert!(!lines.contains('\x1b'), "colour without a colour terminal");

    run(&mut s, "hist([1, 2, 2, 3, 3, 3, 4, 4, 5], 5)\nshow()");
    check_snapshot("terminal_hist.txt", &buf.take());
    run(&mut s, "imshow([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])\nshow()");
    let image = buf.take();
    check_snapshot("terminal_image.txt", &image);
    assert!(image.contains("3 × 4, values from 0 to 11"), "{image}");
}

#[test]
fn colour_images_use_escapes() {
    let screen = Screen { color: true, size: Size::default() };
    let (mut s, buf) = session(Some(screen));
    run(&mut s, "imshow([[0, 1], [2, 3]])\nshow()");
    let out = buf.take();
    // Two pixels a character: the top one's colour in front, the bottom one's behind.
    // Viridis at 0 is (68, 1, 84); at 2/3 (row 1, column 0) it is (64, 182, 118).
    assert!(out.starts_with("\x1b[38;2;68;1;84m\x1b[48;2;"), "{out:?}");
    assert!(out.contains('▀'), "{out:?}");
}

#[test]
fn show_and_savefig_complete_one_figure() {
    let screen = Screen { color: false, size: Size::default() };
    let (mut s, buf) = session(Some(screen));
    let path = scratch("again.svg");
    // Saved, then shown: the same figure.
    run(&mut s, &format!("plot([1, 2, 3])\nsavefig({:?})\nshow()", path.display().to_string()));
    let shown = buf.take();
    assert!(shown.contains('⠀'), "the saved figure is shown: {shown:?}");
    assert_eq!(polylines(&std::fs::read_to_string(&path).unwrap()).len(), 1);
    // A new call starts a new figure: the saved file has one line, not two.
    run(&mut s, &format!("plot([3, 2, 1])\nshow()\nsavefig({:?})", path.display().to_string()));
    assert_eq!(polylines(&std::fs::read_to_string(&path).unwrap()).len(), 1);
    // A figure with series not yet shown is drawn by show_pending (the REPL's end of an
    // entry); after that nothing is pending.
    buf.take();
    run(&mut s, "plot([1, 5])");
    assert_eq!(buf.take(), "");
    s.show_pending();
    assert!(buf.take().contains('⠀'));
    s.show_pending();
    assert_eq!(buf.take(), "");
}

#[test]
fn plotting_errors_are_located() {
    let (mut s, _) = session(None);
    let e = error(&mut s, "plot([1, 2, 3])\nsavefig(\"/nonexistent-dir/loss.svg\")");
    assert!(e.contains("cannot write `/nonexistent-dir/loss.svg`: No such file or directory"), "{e}");
    assert!(e.contains("test.ad:2:1"), "{e}");
    let e = error(&mut s, "plot([1, 2, 3])\nsavefig(\"/nonexistent-dir/loss.png\")");
    assert!(e.contains("cannot write `/nonexistent-dir/loss.png`"), "{e}");
    let e = error(&mut s, "savefig(\"a.pdf\")");
    assert!(e.contains("`savefig` writes .svg or .png files"), "{e}");
    let e = error(&mut s, "plot([1, 2], [1, 2, 3])");
    assert!(e.contains("`plot` has 2 x values but 3 y values"), "{e}");
    let e = error(&mut s, "imshow([1, 2])");
    assert!(e.contains("`imshow` draws a matrix, found shape [2]"), "{e}");
    let e = error(&mut s, "hist([1, 2], 0)");
    assert!(e.contains("`hist` takes 1 to 10000 bins, not 0"), "{e}");
    let e = error(&mut s, "title(3)");
    assert!(e.contains("`title` takes a label (a string), found a number"), "{e}");
    let e = error(&mut s, "def f(x) { plot(x); x }\nf([1, 2])");
    assert!(e.contains("`plot` is only available at the top level"), "{e}");
    let e = error(&mut s, "plot([1, 2])\nimshow(eye(2))");
    assert!(e.contains("an image is a figure of its own"), "{e}");
    let (mut fresh, _) = session(None);
    let e = error(&mut fresh, "savefig(\"x.svg\")");
    assert!(e.contains("there is no figure to save in `x.svg`: plot something first"), "{e}");
}

#[test]
fn check_finds_plotting_misuse_without_running() {
    let (mut s, buf) = session(None);
    let errors = s.check_source("c.ad", "let x = randn(5)\nplot(x, randn(4))");
    let text = ad_syntax::render(&s.sources, &errors, false);
    assert!(text.contains("`plot` has 5 x values but 4 y values"), "{text}");
    let errors = s.check_source("c.ad", "plot(randn((3, 2)))\nsavefig(\"never-written.svg\")");
    assert!(errors.is_empty());
    assert!(!Path::new("never-written.svg").exists(), "checking wrote a file");
    assert_eq!(buf.take(), "");
}

#[test]
fn extreme_values_are_drawn_without_trouble() {
    // Axes of infinite length made plotters loop, and points far off the axes overflowed
    // its pixel arithmetic; non-finite values are skipped.
    let screen = Screen { color: false, size: Size::default() };
    let (mut s, buf) = session(Some(screen));
    let (svg, png) = (scratch("extreme.svg"), scratch("extreme.png"));
    for data in [
        "plot([-1e308, 1e308])",
        "plot([0, 1e308, 1])",
        "scatter([1e308, -1e308], [1e308, -1e308])",
        "hist([1e308, -1e308])",
        "plot([0, inf, nan, 1])",
        "imshow([[inf, -inf], [nan, 1e308]])",
    ] {
        run(
            &mut s,
            &format!(
                "{data}\nsavefig({:?})\nsavefig({:?})\nshow()",
                svg.display().to_string(),
                png.display().to_string()
            ),
        );
        roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).expect("well-formed SVG");
        assert!(buf.take().lines().count() >= 3, "{data} was not drawn");
    }
    // A line broken by a NaN is two lines.
    run(&mut s, &format!("plot([0, 1, nan, 2, 3])\nsavefig({:?})", svg.display().to_string()));
    assert_eq!(polylines(&std::fs::read_to_string(&svg).unwrap()).len(), 2);
}
