//! The server answering messages in process (no stdio): the lifecycle, each feature, UTF-16
//! positions, and that no message — malformed, out of range, about a file full of errors —
//! gets an internal error.

use ad_lsp::{Flow, Server};
use lsp_server::{Message, Notification, Request, RequestId};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const URI: &str = "file:///work/test.ad";

struct Client {
    server: Server,
    next: i32,
    /// Notifications the server sent (diagnostics).
    notes: Vec<Value>,
}

impl Client {
    fn new() -> Client {
        Client { server: Server::new(), next: 0, notes: Vec::new() }
    }

    fn initialized() -> Client {
        let mut c = Client::new();
        c.request("initialize", json!({ "capabilities": {} })).unwrap();
        c.notify("initialized", json!({}));
        c
    }

    /// The result of a request, or its error code.
    fn request(&mut self, method: &str, params: Value) -> Result<Value, i64> {
        self.next += 1;
        let id = RequestId::from(self.next);
        let (out, flow) =
            self.server.handle(Message::Request(Request::new(id.clone(), method.into(), params)));
        assert_eq!(flow, Flow::Continue);
        let mut answer = None;
        for m in out {
            match m {
                Message::Response(r) if r.id == id => answer = Some(r),
                Message::Notification(n) => self.notes.push(serde_json::to_value(&n).unwrap()),
                m => panic!("unexpected message {m:?}"),
            }
        }
        let r = answer.expect("no response");
        match r.response_result {
            Ok(v) => Ok(v),
            Err(e) => Err(e.code as i64),
        }
    }

    fn notify(&mut self, method: &str, params: Value) -> Flow {
        let (out, flow) = self.server.handle(Message::Notification(Notification::new(method.into(), params)));
        for m in out {
            self.notes.push(serde_json::to_value(&m).unwrap());
        }
        flow
    }

    fn open(&mut self, text: &str) {
        self.notes.clear();
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": URI, "languageId": "ad", "version": 1, "text": text } }),
        );
    }

    /// The diagnostics last published for the document.
    fn diagnostics(&self) -> Vec<Value> {
        let last =
            self.notes.iter().rev().find(|n| n["method"] == "textDocument/publishDiagnostics").unwrap();
        last["params"]["diagnostics"].as_array().unwrap().clone()
    }

    fn at(&mut self, method: &str, text: &str, marker: &str) -> Value {
        let (line, character) = position(text, marker);
        self.request(
            method,
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": character } }),
        )
        .unwrap_or_else(|code| panic!("{method} at {marker:?}: error {code}"))
    }

    fn hover(&mut self, text: &str, marker: &str) -> String {
        let v = self.at("textDocument/hover", text, marker);
        v["contents"]["value"].as_str().unwrap_or("").to_string()
    }
}

/// The LSP position (UTF-16 columns) of the first occurrence of `marker`.
fn position(text: &str, marker: &str) -> (u32, u32) {
    let i = text.find(marker).unwrap_or_else(|| panic!("{marker:?} not in the text"));
    let before = &text[..i];
    let line = before.matches('\n').count() as u32;
    let col = before[before.rfind('\n').map_or(0, |j| j + 1)..].encode_utf16().count() as u32;
    (line, col)
}

#[test]
fn lifecycle() {
    let mut c = Client::new();
    assert_eq!(c.request("textDocument/hover", json!({})), Err(-32002));
    let init = c.request("initialize", json!({ "capabilities": {} })).unwrap();
    let caps = &init["capabilities"];
    for cap in ["hoverProvider", "completionProvider", "definitionProvider", "signatureHelpProvider"] {
        assert!(!caps[cap].is_null(), "{cap} missing: {caps}");
    }
    assert_eq!(caps["documentFormattingProvider"], json!(true));
    assert_eq!(c.request("initialize", json!({ "capabilities": {} })), Err(-32600));
    assert_eq!(c.request("no/such/method", json!({})), Err(-32601));
    assert_eq!(c.request("textDocument/hover", json!({ "garbage": 1 })), Err(-32602));
    assert_eq!(c.request("shutdown", Value::Null), Ok(Value::Null));
    assert_eq!(c.request("textDocument/hover", json!({})), Err(-32600));
    assert_eq!(c.notify("exit", Value::Null), Flow::Exit(0));
    let mut c = Client::initialized();
    assert_eq!(c.notify("exit", Value::Null), Flow::Exit(1));
}

#[test]
fn diagnostics_at_utf16_ranges() {
    let mut c = Client::initialized();
    let text = "let s = \"é𝛼\"; let v = [1, 2] + [1, 2, 3]\nprint(v)\n";
    c.open(text);
    let d = c.diagnostics();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0]["message"].as_str().unwrap().contains("shape mismatch"), "{d:?}");
    // `[1, 2]` starts after `é` (1 unit) and `𝛼` (2 units): column 23, not its byte 26.
    assert_eq!(d[0]["range"]["start"], json!({ "line": 0, "character": 23 }));
    assert_eq!(d[0]["severity"], json!(1));
    // Fixed by a change: no diagnostics.
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 },
                "contentChanges": [{ "text": "let v = [1, 2] + [1, 2]\n" }] }),
    );
    assert!(c.diagnostics().is_empty());
    // An incremental change (a range) breaks it again.
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 3 },
                "contentChanges": [{ "range": { "start": { "line": 0, "character": 22 },
                                                "end": { "line": 0, "character": 22 } },
                                     "text": ", 3" }] }),
    );
    assert_eq!(c.diagnostics().len(), 1);
    // A syntax error, reported where it is.
    c.open("let x = 1\nlet y = (x +\n");
    let d = c.diagnostics();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["range"]["start"]["line"], json!(1));
    // Closing clears them.
    c.notify("textDocument/didClose", json!({ "textDocument": { "uri": URI } }));
    assert!(c.diagnostics().is_empty());
}

/// A document that imports a file: names and shapes come from the file on disk (relative
/// to the document's path), and an error inside it is reported at the `import` statement.
#[test]
fn imports_are_read_from_beside_the_document() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-lsp-imports-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/w.ad"), "let w = [[1, 2], [3, 4]]\ndef f(x) = x @ w\n").unwrap();
    std::fs::write(dir.join("lib/bad.ad"), "let a = 1\nlet b = [1, 2] + [1, 2, 3]\n").unwrap();
    let uri = format!("file://{}/main.ad", dir.display());
    let mut c = Client::initialized();
    let open = |c: &mut Client, text: &str| {
        c.notes.clear();
        c.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "ad", "version": 1, "text": text } }),
        );
    };
    let text = "import \"lib/w.ad\"\nlet y = f([1, 1]) + w\n";
    open(&mut c, text);
    assert!(c.diagnostics().is_empty(), "{:?}", c.diagnostics());
    let (line, character) = position(text, "w\n");
    let hover = c
        .request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        )
        .unwrap();
    assert!(hover["contents"]["value"].as_str().unwrap().contains("w: f64[2, 2]"), "{hover}");
    open(&mut c, "let x = 1\nimport \"lib/bad.ad\"\n");
    let d = c.diagnostics();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0]["message"].as_str().unwrap().contains("shape mismatch"), "{d:?}");
    assert!(d[0]["message"].as_str().unwrap().contains("in the file imported here"), "{d:?}");
    assert_eq!(d[0]["range"]["start"], json!({ "line": 1, "character": 0 }));
    open(&mut c, "import \"lib/missing.ad\"\n");
    assert!(c.diagnostics()[0]["message"].as_str().unwrap().contains("cannot import"));
}

const PROGRAM: &str = "\
seed(0)
let X = randn((8, 3))
# Predictions of a linear model.
def predict(w: [3], X: [n, 3]) = X @ w
def loss(w, X, y) {
  let r = predict(w, X) - y
  mean(r ^ 2)
}
let w = zeros(3)
let y = X @ [1, -2, 0.5]
for step in 0..10 {
  let g = grad(loss)(w, X, y)
  w = w - 0.1 * g
}
let pair = (w, X')
print(loss(w, X, y), sum(X, 0))
";

#[test]
fn hover_shows_shapes_and_signatures() {
    let mut c = Client::initialized();
    c.open(PROGRAM);
    assert!(c.diagnostics().is_empty(), "{:?}", c.diagnostics());
    let h = |c: &mut Client, m: &str| c.hover(PROGRAM, m);
    assert_eq!(h(&mut c, "X = randn"), "```ad\nX: f64[8, 3]\n```");
    assert_eq!(h(&mut c, "pair ="), "```ad\npair: (f64[3], f64[3, 8])\n```");
    // The expression under the cursor: here `X'`'s transpose.
    assert_eq!(h(&mut c, "'"), "```ad\nf64[3, 8]\n```");
    // In a loop body.
    assert_eq!(h(&mut c, "g = grad"), "```ad\ng: f64[3]\n```");
    // In a def with annotations: dimension names stay names.
    assert_eq!(h(&mut c, "X @ w\n"), "```ad\nX: f64[n, 3]\n```");
    assert_eq!(h(&mut c, "@ w\n"), "```ad\nf64[n]\n```");
    assert_eq!(h(&mut c, "X: [n, 3]"), "```ad\nX: f64[n, 3]\n```\n\na parameter of `predict`");
    // In a def without: the shapes of its first call.
    assert_eq!(h(&mut c, "r = predict"), "```ad\nr: f64[8]\n```");
    // Functions: the file's own (with the comment above), the prelude's, builtins.
    assert_eq!(
        h(&mut c, "predict(w, X) -"),
        "```ad\ndef predict(w: [3], X: [n, 3])\n```\n\nPredictions of a linear model."
    );
    assert!(h(&mut c, "mean(r").starts_with("```ad\nmean(x)\nmean(x, axis)\n```\n\nMean of all elements"));
    assert!(h(&mut c, "sum(X, 0)").starts_with("```ad\nsum(x)\nsum(x, axes)\n```"));
    // Nothing on a keyword or a blank.
    assert_eq!(c.at("textDocument/hover", PROGRAM, "for step"), Value::Null);
}

#[test]
fn completion_lists_names_in_scope_builtins_and_keywords() {
    let mut c = Client::initialized();
    c.open(PROGRAM);
    let labels = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()).collect()
    };
    let inside_loop = labels(&c.at("textDocument/completion", PROGRAM, "w = w - 0.1"));
    for name in
        ["g", "step", "w", "X", "y", "loss", "predict", "sum", "grad", "mean", "softmax", "pi", "while"]
    {
        assert!(inside_loop.contains(&name.to_string()), "{name} missing from {inside_loop:?}");
    }
    assert!(!inside_loop.contains(&"r".to_string()), "a local of `loss` leaked");
    assert!(!inside_loop.contains(&"_shift".to_string()), "a private prelude name leaked");
    let items = c.at("textDocument/completion", PROGRAM, "w = w - 0.1");
    let predict = items.as_array().unwrap().iter().find(|i| i["label"] == "predict").unwrap();
    assert_eq!(predict["detail"], "def predict(w: [3], X: [n, 3])");
    assert_eq!(predict["kind"], json!(3));
    // Nothing in a comment.
    assert_eq!(c.at("textDocument/completion", PROGRAM, "of a linear"), json!([]));
}

#[test]
fn definition_jumps_to_bindings() {
    let mut c = Client::initialized();
    c.open(PROGRAM);
    let target = |v: &Value| -> Vec<(u64, u64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["range"]["start"]["line"].as_u64().unwrap(),
                    l["range"]["start"]["character"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(target(&c.at("textDocument/definition", PROGRAM, "predict(w, X) -")), [(3, 4)]);
    assert_eq!(target(&c.at("textDocument/definition", PROGRAM, "r ^ 2")), [(5, 6)]);
    assert_eq!(target(&c.at("textDocument/definition", PROGRAM, "g\n}")), [(11, 6)]);
    assert_eq!(target(&c.at("textDocument/definition", PROGRAM, "w, X, y), sum")), [(8, 4)]);
    // A builtin has no definition in the file.
    assert_eq!(c.at("textDocument/definition", PROGRAM, "sum(X, 0)"), Value::Null);
}

#[test]
fn signature_help_while_typing() {
    let mut c = Client::initialized();
    let text = "def f(a, b: [n]) = a\nprint(f(1, ";
    c.open(text);
    let end = json!({ "line": 1, "character": 11 });
    let v = c
        .request("textDocument/signatureHelp", json!({ "textDocument": { "uri": URI }, "position": end }))
        .unwrap();
    assert_eq!(v["signatures"][0]["label"], "f(a, b: [n])");
    assert_eq!(v["activeParameter"], json!(1));
    assert_eq!(v["signatures"][0]["parameters"][1]["label"], json!([5, 11]));
    let text = "let x = sum([1, 2], ";
    c.open(text);
    let v = c
        .request(
            "textDocument/signatureHelp",
            json!({ "textDocument": { "uri": URI }, "position": { "line": 0, "character": 20 } }),
        )
        .unwrap();
    assert_eq!(
        v["signatures"],
        json!([
            { "label": "sum(x)", "documentation": { "kind": "markdown", "value": "builtin" }, "parameters": [{ "label": [4, 5] }] },
            { "label": "sum(x, axes)", "documentation": { "kind": "markdown", "value": "builtin" }, "parameters": [{ "label": [4, 5] }, { "label": [7, 11] }] },
        ])
    );
    assert_eq!(v["activeSignature"], json!(1));
}

#[test]
fn formatting_returns_one_edit() {
    let mut c = Client::initialized();
    c.open("let x=1+2 # c\n");
    let opts = json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 2, "insertSpaces": true } });
    let v = c.request("textDocument/formatting", opts.clone()).unwrap();
    assert_eq!(
        v,
        json!([{ "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 0 } },
                 "newText": "let x = 1 + 2 # c\n" }])
    );
    c.open("let x = 1 + 2\n");
    assert_eq!(c.request("textDocument/formatting", opts.clone()).unwrap(), json!([]));
    c.open("let x = (1 +\n");
    assert_eq!(c.request("textDocument/formatting", opts).unwrap(), Value::Null);
}

fn ad_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        // The benchmarks derive programs of 100,000 equations, and every question checks
        // the statements before it again: minutes in a debug build, for nothing new.
        if p.is_dir() && !p.ends_with("bench") {
            ad_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ad") {
            out.push(p);
        }
    }
}

/// Every question at every fifth column of the examples (benchmarks aside) and of golden sources (those with errors
/// included), and at places past the end: answers, never an internal error.
#[test]
fn no_position_and_no_file_makes_an_internal_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    ad_files(&root.join("examples"), &mut files);
    ad_files(&root.join("tests/golden/errors"), &mut files);
    ad_files(&root.join("tests/golden/lang"), &mut files);
    files.sort();
    let mut c = Client::initialized();
    let methods = [
        "textDocument/hover",
        "textDocument/completion",
        "textDocument/definition",
        "textDocument/signatureHelp",
    ];
    let mut asked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        c.open(&text);
        let mut positions: Vec<(u32, u32)> = Vec::new();
        for (line, l) in text.lines().enumerate() {
            let units = l.encode_utf16().count() as u32;
            for character in (0..=units).step_by(5) {
                positions.push((line as u32, character));
            }
        }
        positions.extend([(0, 10_000), (100_000, 0), (u32::MAX, u32::MAX)]);
        for (line, character) in positions {
            for m in methods {
                let params = json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": character } });
                if let Err(code) = c.request(m, params) {
                    panic!("{m} at {line}:{character} of {}: error {code}", f.display());
                }
                asked += 1;
            }
        }
        let opts =
            json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 2, "insertSpaces": true } });
        assert!(c.request("textDocument/formatting", opts).is_ok());
    }
    assert!(asked > 1000, "asked only {asked} questions");
    // Questions about a document that is not open, and malformed parameters.
    let other =
        json!({ "textDocument": { "uri": "file:///nowhere.ad" }, "position": { "line": 0, "character": 0 } });
    for m in methods {
        assert_eq!(c.request(m, other.clone()).map(|v| v.is_null() || v == json!([])), Ok(true), "{m}");
        assert_eq!(c.request(m, json!([1, 2, 3])), Err(-32602));
        assert_eq!(c.request(m, json!({ "position": "here" })), Err(-32602));
    }
    for n in ["textDocument/didOpen", "textDocument/didChange", "textDocument/didClose", "$/cancelRequest"] {
        assert_eq!(c.notify(n, json!({ "bad": true })), Flow::Continue);
    }
}
