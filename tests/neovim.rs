//! `ad lsp` under a real client: headless Neovim, configured by the snippet the book gives
//! for its version (book/src/editors.md, the ```lua blocks headed `-- Neovim X.Y`), opens a
//! file with a shape error and asks for diagnostics, a hover, a definition and formatting.
//!
//! Without `nvim` on `PATH` (or older than 0.7) the test prints `skipped: <reason>` to
//! standard error and passes, so a machine without Neovim still runs the suite; set
//! `AD_REQUIRE_NVIM=1` to make that a failure instead. `AD_NVIM` names another `nvim`, and
//! `AD_NVIM_SNIPPET=0.8` picks the book's snippet for that version instead of the newest
//! one the installed Neovim supports. Neovim is killed after 20 seconds.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The file Neovim opens: a valid line, a line `ad fmt` changes, and a shape error.
const SCRIPT: &str = "let v = [1, 2, 3]\nlet w = v*2\nlet bad = w + [1, 2]\n";
/// Where the questions are asked (0-based line, UTF-16 column).
const HOVER_AT: (u32, u32) = (1, 4); // `w` in `let w = v*2`
const DEFINITION_AT: (u32, u32) = (2, 10); // `w` in `w + [1, 2]`

const TIMEOUT: Duration = Duration::from_secs(20);

/// Neovim's version from `nvim --version` ("NVIM v0.7.2", "NVIM v0.11.4", "NVIM v0.12.0-dev-...").
fn version(nvim: &str) -> Result<(u32, u32), String> {
    let out =
        Command::new(nvim).arg("--version").stdin(Stdio::null()).output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("`{nvim}` is not installed (not on PATH)"),
            _ => format!("`{nvim}` cannot be run ({e})"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    let v = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .ok_or(format!("`{nvim} --version` says {first:?}"))?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Ok((major, minor)),
        _ => Err(format!("cannot read the version in {first:?}")),
    }
}

/// The book's Neovim snippets, with the version each is for.
fn book_snippets() -> Vec<((u32, u32), String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("book/src/editors.md")).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```lua" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let head = body.first().copied().unwrap_or("");
        let v = head.strip_prefix("-- Neovim ").and_then(|r| r.split_whitespace().next());
        let Some((major, minor)) = v.and_then(|v| v.split_once('.')) else {
            panic!("a ```lua block of editors.md does not start with `-- Neovim X.Y`: {head:?}")
        };
        out.push(((major.parse().unwrap(), minor.parse().unwrap()), body.join("\n") + "\n"));
    }
    out
}

/// What runs after the snippet: once Neovim has started (and opened the file, so the
/// snippet's `FileType` handler has run), wait for diagnostics, ask the questions, write
/// the answers as JSON and quit, whatever happens.
fn probe() -> String {
    format!(
        r#"
vim.api.nvim_create_autocmd('VimEnter', {{ callback = function()
  local result = {{}}
  local ok, err = pcall(function()
    local buf = vim.api.nvim_get_current_buf()
    result.filetype = vim.bo[buf].filetype
    result.diagnosed = vim.wait(15000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
    result.diagnostics = {{}}
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      table.insert(result.diagnostics, {{ line = d.lnum, col = d.col, message = d.message, severity = d.severity }})
    end
    local uri = vim.uri_from_bufnr(buf)
    local function ask(method, params)
      local answers, e = vim.lsp.buf_request_sync(buf, method, params, 10000)
      if not answers then error(method .. ': ' .. tostring(e)) end
      for _, a in pairs(answers) do
        if a.err then error(method .. ': ' .. vim.inspect(a.err)) end
        return a.result
      end
      error(method .. ': no client answered')
    end
    local function at(line, character)
      return {{ textDocument = {{ uri = uri }}, position = {{ line = line, character = character }} }}
    end
    local hover = ask('textDocument/hover', at({hl}, {hc}))
    result.hover = hover and hover.contents and hover.contents.value
    result.definition = {{}}
    for _, loc in ipairs(ask('textDocument/definition', at({dl}, {dc})) or {{}}) do
      table.insert(result.definition, loc.range.start)
    end
    local edits = ask('textDocument/formatting',
      {{ textDocument = {{ uri = uri }}, options = {{ tabSize = 2, insertSpaces = true }} }})
    vim.lsp.util.apply_text_edits(edits or {{}}, buf, 'utf-16')
    result.formatted = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  end)
  if not ok then result.error = tostring(err) end
  vim.fn.writefile({{ vim.fn.json_encode(result) }}, os.getenv('AD_NVIM_OUT'))
  vim.cmd('qall!')
end }})
"#,
        hl = HOVER_AT.0,
        hc = HOVER_AT.1,
        dl = DEFINITION_AT.0,
        dc = DEFINITION_AT.1,
    )
}

fn skip(reason: &str) {
    if std::env::var_os("AD_REQUIRE_NVIM").is_some() {
        panic!("AD_REQUIRE_NVIM is set, but {reason}");
    }
    eprintln!("skipped: {reason} (the Neovim client test did not run)");
}

fn scratch() -> PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-neovim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn neovim_talks_to_ad_lsp() {
    let nvim = std::env::var("AD_NVIM").unwrap_or_else(|_| "nvim".into());
    let have = match version(&nvim) {
        Ok(v) => v,
        Err(reason) => return skip(&format!("no usable Neovim: {reason}")),
    };
    if have < (0, 7) {
        return skip(&format!("Neovim {}.{} is older than 0.7", have.0, have.1));
    }
    let snippets = book_snippets();
    assert!(snippets.len() >= 2, "editors.md lost its Neovim snippets");
    let wanted = match std::env::var("AD_NVIM_SNIPPET") {
        Ok(v) if !v.is_empty() => {
            let (a, b) = v.split_once('.').expect("AD_NVIM_SNIPPET is MAJOR.MINOR");
            Some((a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()))
        }
        _ => None,
    };
    let (for_version, snippet) = snippets
        .iter()
        .filter(|(v, _)| match wanted {
            Some(w) => *v == w,
            None => *v <= have,
        })
        .max_by_key(|(v, _)| *v)
        .unwrap_or_else(|| panic!("editors.md has no Neovim snippet for {wanted:?} / {have:?}"));
    // The snippet starts `ad` by name; here, the binary this build made.
    let cmd = "cmd = { 'ad', 'lsp' }";
    assert!(snippet.contains(cmd), "the snippet for Neovim {for_version:?} does not say `{cmd}`");
    let snippet = snippet.replace(cmd, "cmd = { os.getenv('AD_BIN'), 'lsp' }");

    let dir = scratch();
    let init = dir.join("init.lua");
    std::fs::write(&init, format!("{snippet}{}", probe())).unwrap();
    let file = dir.join("script.ad");
    std::fs::write(&file, SCRIPT).unwrap();
    let out = dir.join("answers.json");
    let log = std::fs::File::create(dir.join("nvim.log")).unwrap();

    let mut child = Command::new(&nvim)
        .args(["--headless", "--clean", "-n", "-i", "NONE", "-u"])
        .arg(&init)
        .arg(&file)
        .current_dir(&dir)
        .env("AD_BIN", env!("CARGO_BIN_EXE_ad"))
        .env("AD_NVIM_OUT", &out)
        // Neovim's own files (LSP log, state) stay in the scratch directory.
        .env("HOME", &dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {nvim}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("nvim.log")).unwrap_or_default();
            panic!("Neovim {have:?} did not finish in {TIMEOUT:?}; its output:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("nvim.log")).unwrap_or_default();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("Neovim ({status}) wrote no answers ({e}); its output:\n{log}"));
    let r: Value = serde_json::from_str(&text).unwrap();
    eprintln!("Neovim {}.{} with the book's snippet for {for_version:?}: {r}", have.0, have.1);
    assert!(r.get("error").is_none(), "the probe failed: {r}\n{log}");

    // The snippet's filetype detection and server start worked.
    assert_eq!(r["filetype"], "ad", "{r}");
    assert_eq!(r["diagnosed"], true, "no diagnostics arrived: {r}\n{log}");
    let d = r["diagnostics"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{r}");
    assert_eq!((&d[0]["line"], &d[0]["col"]), (&Value::from(2), &Value::from(10)), "{r}");
    let message = d[0]["message"].as_str().unwrap();
    assert!(message.starts_with("shape mismatch in `+`: [3] and [2]"), "{message}");
    assert_eq!(d[0]["severity"], 1, "an error: {r}");
    assert_eq!(r["hover"], "```ad\nw: f64[3]\n```", "{r}");
    assert_eq!(r["definition"], serde_json::json!([{ "line": 1, "character": 4 }]), "{r}");
    assert_eq!(
        r["formatted"],
        serde_json::json!(["let v = [1, 2, 3]", "let w = v * 2", "let bad = w + [1, 2]"]),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
