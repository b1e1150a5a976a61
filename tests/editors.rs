//! The VS Code extension in editors/vscode/ hangs together: its manifest parses, names the
//! files it ships (which exist and parse), declares the `ad` language for `.ad` files with
//! the grammar's scope, and the setting the client reads; the grammar it ships is the
//! repository's, copied in by copy-grammar.js when the extension is installed or packaged;
//! and, when `node` is installed, the copy script and the client run (the client against
//! stubs of VS Code, editors/vscode/test/smoke.js).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ext_dir() -> PathBuf {
    root().join("editors/vscode")
}

fn json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Where copy-grammar.js puts the grammar, as the manifest names it.
const GRAMMAR_COPY: &str = "./syntaxes/ad.tmLanguage.json";

/// A path the manifest gives (`./x/y.json`), as a file of the extension.
fn shipped(relative: &str) -> PathBuf {
    assert!(relative.starts_with("./"), "manifest paths are relative to the extension: {relative}");
    assert!(!relative.contains(".."), "a packaged extension cannot reach {relative}");
    let p = ext_dir().join(relative.trim_start_matches("./"));
    assert!(p.is_file(), "the manifest names {relative}, which does not exist");
    p
}

#[test]
fn manifest_declares_the_language_grammar_and_settings() {
    let m = json(&ext_dir().join("package.json"));
    let c = &m["contributes"];

    let langs = c["languages"].as_array().expect("contributes.languages");
    assert_eq!(langs.len(), 1);
    let lang = &langs[0];
    assert_eq!(lang["id"], "ad");
    assert_eq!(lang["extensions"], serde_json::json!([".ad"]));
    let config = json(&shipped(lang["configuration"].as_str().unwrap()));
    assert_eq!(config["comments"]["lineComment"], "#");
    let pairs: Vec<String> =
        config["brackets"].as_array().unwrap().iter().map(|p| format!("{}{}", p[0], p[1])).collect();
    for b in ["\"{\"\"}\"", "\"[\"\"]\"", "\"(\"\")\""] {
        assert!(pairs.contains(&b.to_string()), "brackets lack {b}: {pairs:?}");
    }
    let closing: Vec<&str> =
        config["autoClosingPairs"].as_array().unwrap().iter().map(|p| p["open"].as_str().unwrap()).collect();
    for open in ["{", "[", "(", "\""] {
        assert!(closing.contains(&open), "no auto-closing pair for {open}");
    }
    // `'` is the transpose (`X'`), not a quote: closing it would get in the way.
    assert!(!closing.contains(&"'"), "`'` must not auto-close");

    let grammars = c["grammars"].as_array().expect("contributes.grammars");
    assert_eq!(grammars.len(), 1);
    let g = &grammars[0];
    assert_eq!(g["language"], lang["id"], "the grammar is for the declared language");
    // The grammar is copied in at install time (copy-grammar.js), to the path named here.
    let grammar_path = g["path"].as_str().unwrap();
    assert_eq!(grammar_path, GRAMMAR_COPY, "copy-grammar.js writes the grammar the manifest names");
    let grammar = json(&root().join("grammar/ad.tmLanguage.json"));
    assert_eq!(g["scopeName"], grammar["scopeName"], "the manifest's scopeName is the grammar's");
    let file_types = grammar["fileTypes"].as_array().unwrap();
    for ext in lang["extensions"].as_array().unwrap() {
        let bare = ext.as_str().unwrap().trim_start_matches('.');
        assert!(file_types.iter().any(|f| f == bare), "the grammar's fileTypes lack {bare}");
    }

    // The client: its entry point, when it starts, the setting it reads, its commands.
    let main = shipped(m["main"].as_str().unwrap());
    let client = std::fs::read_to_string(main).unwrap();
    assert!(
        m["activationEvents"].as_array().unwrap().contains(&Value::from("onLanguage:ad")),
        "the extension starts with an `ad` file"
    );
    let props = &c["configuration"]["properties"];
    assert_eq!(props["ad.server.path"]["default"], "ad");
    assert_eq!(props["ad.server.path"]["type"], "string");
    assert!(
        client.contains("getConfiguration('ad').get('server.path')"),
        "extension.js reads ad.server.path"
    );
    assert!(client.contains("args: ['lsp']"), "extension.js starts `ad lsp`");
    // `<client id>.trace.server` is the setting vscode-languageclient reads.
    assert!(props.get("ad.trace.server").is_some() && client.contains("new LanguageClient('ad',"));
    let commands: Vec<&str> =
        c["commands"].as_array().unwrap().iter().map(|c| c["command"].as_str().unwrap()).collect();
    let registered: Vec<&str> =
        client.split("registerCommand('").skip(1).map(|r| r.split('\'').next().unwrap()).collect();
    assert_eq!(commands, registered, "contributed commands are the ones extension.js registers");

    let deps = m["dependencies"].as_object().unwrap();
    assert!(deps.contains_key("vscode-languageclient"));
    assert!(m["engines"]["vscode"].is_string());
    // Installed packages are not committed.
    let ignore = std::fs::read_to_string(ext_dir().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "node_modules/"));
}

/// `npm install` and `vsce package` copy the repository's grammar into the extension.
#[test]
fn install_scripts_copy_the_repository_grammar() {
    let m = json(&ext_dir().join("package.json"));
    for script in ["postinstall", "vscode:prepublish"] {
        assert_eq!(m["scripts"][script], "node copy-grammar.js", "package.json scripts.{script}");
    }
    let script = std::fs::read_to_string(ext_dir().join("copy-grammar.js")).unwrap();
    assert!(script.contains("'..', '..', 'grammar', 'ad.tmLanguage.json'"), "copy-grammar.js reads grammar/");
    let target = GRAMMAR_COPY.trim_start_matches("./").replace('/', "', '");
    assert!(script.contains(&format!("'{target}'")), "copy-grammar.js writes {GRAMMAR_COPY}");
    let ignore = std::fs::read_to_string(ext_dir().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "syntaxes/"), "the copy is not committed");

    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-editors-{}", std::process::id()));
    let dest = dir.join("syntaxes/ad.tmLanguage.json");
    let node = std::env::var("AD_NODE").unwrap_or_else(|_| "node".into());
    match Command::new(&node)
        .arg("copy-grammar.js")
        .arg(&dest)
        .current_dir(ext_dir())
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "copy-grammar.js failed: {}", String::from_utf8_lossy(&out.stderr));
            let original = std::fs::read(root().join("grammar/ad.tmLanguage.json")).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), original, "the copy differs from the grammar");
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => eprintln!("skipped: `{node}` cannot be run ({e}); copy-grammar.js did not run"),
    }
}

#[test]
fn client_runs_against_stubs() {
    let node = std::env::var("AD_NODE").unwrap_or_else(|_| "node".into());
    let out =
        match Command::new(&node).arg("test/smoke.js").current_dir(ext_dir()).stdin(Stdio::null()).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: `{node}` cannot be run ({e}); the extension's smoke test did not run");
                return;
            }
        };
    assert!(
        out.status.success(),
        "node test/smoke.js failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
