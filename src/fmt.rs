//! `ad fmt`: files in, files out (the formatter itself is `ad_syntax::format`).

use ad_syntax::SourceMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Formats `paths` in place (a directory stands for the `.ad` files under it), or standard
/// input to standard output for `-`. With `check`, changes nothing and names on standard
/// output the files that would change. Exit status: 0; 1 when a file has syntax errors (it
/// is left as it is) or, with `check`, would change; 2 when a path cannot be read.
pub fn run(paths: &[String], check: bool, color: bool, out: fn(&str) -> Result<(), ExitCode>) -> ExitCode {
    let mut files = Vec::new();
    for p in paths {
        if p == "-" {
            files.push(None);
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut found = Vec::new();
            ad_files(path, &mut found);
            found.sort();
            files.extend(found.into_iter().map(Some));
        } else {
            files.push(Some(path.to_path_buf()));
        }
    }
    let mut texts = Vec::new();
    for f in &files {
        let text = match f {
            None => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map(|_| s)
                    .map_err(|e| format!("cannot read standard input: {e}"))
            }
            Some(p) => read_utf8(p),
        };
        match text {
            Ok(t) => texts.push(t),
            Err(m) => {
                eprintln!("Error: {m}");
                return ExitCode::from(2);
            }
        }
    }
    let mut sources = SourceMap::new();
    let (mut failed, mut changed) = (false, 0);
    for (f, text) in files.iter().zip(&texts) {
        let name = f.as_ref().map_or("<stdin>".to_string(), |p| p.display().to_string());
        let id = sources.add(name.clone(), text.as_str());
        let formatted = match ad_syntax::format::format(id, text) {
            Ok(s) => s,
            Err(errors) => {
                eprint!("{}", ad_syntax::render(&sources, &errors, color));
                failed = true;
                continue;
            }
        };
        if check {
            if formatted != *text {
                changed += 1;
                if let Err(code) = out(&format!("{name}\n")) {
                    return code;
                }
            }
            continue;
        }
        match f {
            None => {
                if let Err(code) = out(&formatted) {
                    return code;
                }
            }
            Some(p) if formatted != *text => {
                if let Err(e) = std::fs::write(p, &formatted) {
                    eprintln!("Error: cannot write {name}: {e}");
                    failed = true;
                }
            }
            Some(_) => {}
        }
    }
    if changed > 0 {
        let files = if changed == 1 { "file" } else { "files" };
        eprintln!("{changed} {files} would be reformatted by `ad fmt`");
    }
    if failed || changed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A file's text; one that is not UTF-8 is refused rather than rewritten with replacement
/// characters.
fn read_utf8(p: &Path) -> Result<String, String> {
    let name = p.display().to_string();
    let bytes = std::fs::read(p).map_err(|_| ad_driver::read_source(&name).err().unwrap_or_default())?;
    String::from_utf8(bytes).map_err(|_| format!("`{name}` is not UTF-8 text"))
}

fn ad_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            ad_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ad") {
            out.push(p);
        }
    }
}
