//! A fuzzing campaign: make cases from a seed, run them, keep one minimised case per
//! distinct finding.
//!
//! Case `i` of a run with seed `s` depends only on `(s, i)`, so any case can be made again
//! on its own (`--seed s --case i`), and a run with several jobs runs the same cases as a
//! run with one.

use crate::classify::{classify, Finding};
use crate::corpus::Corpus;
use crate::gen::{self, Shape, Ty};
use crate::minimize::{self, Budget};
use crate::rng::Rng;
use crate::run::Runner;
use crate::target::{Case, Target, DERIVE_MODES};
use crate::{mutate, noise};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a case came from, for statistics and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Generated,
    ReplSession,
    Mutated,
    Noise,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Generated => "generated",
            Source::ReplSession => "repl session",
            Source::Mutated => "mutated",
            Source::Noise => "noise",
        }
    }
}

/// Case `index` of the run seeded with `seed`, and where it came from (for mutations and
/// noise, the corpus file).
pub fn make_case(seed: u64, index: u64, corpus: &Corpus) -> (Case, Source, String) {
    let mut rng = Rng::for_case(seed, index);
    let have_corpus = !corpus.files.is_empty();
    let source = match rng.weighted(&[45, 20, if have_corpus { 25 } else { 0 }, 10]) {
        0 => Source::Generated,
        1 => Source::ReplSession,
        2 => Source::Mutated,
        _ => Source::Noise,
    };
    match source {
        Source::Generated => {
            let p = gen::program(&mut rng);
            let target = match rng.weighted(&[40, 20, 28, 12]) {
                0 => Target::Run,
                1 => Target::Check,
                2 => generated_derive_target(&mut rng, &p),
                _ => Target::Repl,
            };
            (Case::new(target, p.text), source, String::new())
        }
        Source::ReplSession => (Case::new(Target::Repl, gen::repl_session(&mut rng)), source, String::new()),
        Source::Mutated | Source::Noise => {
            let (text, origin, defs) = if source == Source::Noise && (!have_corpus || rng.chance(30)) {
                let p = gen::program(&mut rng);
                let defs = crate::corpus::def_headers(&p.text);
                (p.text.into_bytes(), "generated".to_string(), defs)
            } else {
                let f = rng.pick(&corpus.files);
                (f.text.clone(), f.name.clone(), f.defs.clone())
            };
            let text = if source == Source::Mutated {
                let donor = &rng.pick(&corpus.files).text;
                mutate::mutate(&mut rng, &text, donor)
            } else {
                noise::noise(&mut rng, &text)
            };
            let target = match rng.weighted(&[35, 20, 30, 15]) {
                0 => Target::Run,
                1 => Target::Check,
                2 if !defs.is_empty() => corpus_derive_target(&mut rng, &defs),
                2 => Target::Check,
                _ => Target::Repl,
            };
            (Case::new(target, text), source, origin)
        }
    }
}

fn some_shape(rng: &mut Rng) -> Shape {
    if rng.chance(30) {
        gen::odd_shape(rng)
    } else {
        rng.pick(&[vec![], vec![3], vec![2, 3], vec![4], vec![3, 3], vec![1]]).clone()
    }
}

/// `ad derive` pointed at a generated `def`, with its own shapes most of the time and odd
/// ones otherwise.
fn generated_derive_target(rng: &mut Rng, p: &gen::Program) -> Target {
    let mode = rng.pick(DERIVE_MODES).to_string();
    if p.defs.is_empty() || rng.chance(4) {
        let mut names = vec!["nothing".to_string()];
        names.extend(p.globals.iter().cloned());
        return Target::Derive { mode, function: rng.pick(&names).clone(), shapes: vec![] };
    }
    if rng.chance(4) {
        // A library function of the prelude (some are overloaded, which derive refuses).
        let (function, params) = *rng.pick(&[
            ("norm", &["x"][..]),
            ("inv", &["A"]),
            ("dot", &["a", "b"]),
            ("outer", &["a", "b"]),
            ("mse", &["a", "b"]),
            ("cross_entropy", &["logits", "onehot"]),
            ("logsumexp", &["x"]),
            ("mean", &["x"]),
        ]);
        let shapes = params.iter().map(|p| gen::shape_option(p, &Ty::Arr(some_shape(rng)))).collect();
        return Target::Derive { mode, function: function.to_string(), shapes };
    }
    // `grad`, `hvp` and `hessian` need a scalar result: prefer the functions that have one.
    let scalar: Vec<&gen::DefInfo> = p.defs.iter().filter(|d| d.result == Ty::Arr(vec![])).collect();
    let def = if ["grad", "hvp", "hessian"].contains(&mode.as_str()) && !scalar.is_empty() && rng.chance(80) {
        *rng.pick(&scalar)
    } else {
        rng.pick(&p.defs)
    };
    let mut shapes = Vec::new();
    for (name, ty) in &def.params {
        if def.annotated && rng.chance(70) {
            continue;
        }
        if rng.chance(75) {
            shapes.push(gen::shape_option(name, ty));
        } else {
            let odd = match ty {
                Ty::Tuple(ts) if rng.chance(50) => Ty::Tuple(ts.iter().map(|_| some_shape(rng)).collect()),
                _ => Ty::Arr(some_shape(rng)),
            };
            shapes.push(gen::shape_option(name, &odd));
        }
    }
    Target::Derive { mode, function: def.name.clone(), shapes }
}

/// `ad derive` pointed at a `def` of a corpus file, with shapes for the parameters that
/// have no annotation (and sometimes for those that do, or for dimension names).
fn corpus_derive_target(rng: &mut Rng, defs: &[crate::corpus::DefHeader]) -> Target {
    let mode = rng.pick(DERIVE_MODES).to_string();
    let def = rng.pick(defs);
    let mut shapes = Vec::new();
    for p in &def.params {
        if p.annotated && rng.chance(80) {
            if let Some(dn) = p.dim_names.first() {
                if rng.chance(20) {
                    shapes.push(format!("{dn}=[{}]", rng.pick(&[0, 1, 2, 5, 400])));
                }
            }
            continue;
        }
        let s = some_shape(rng);
        shapes.push(gen::shape_option(&p.name, &Ty::Arr(s)));
    }
    Target::Derive { mode, function: def.name.clone(), shapes }
}

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Stop after this many cases...
    pub cases: Option<u64>,
    /// ...or after this long, whichever comes first.
    pub duration: Option<Duration>,
    pub jobs: usize,
    pub minimize: Budget,
    /// Where to write minimised findings (one `.ad` file each), if anywhere.
    pub out_dir: Option<PathBuf>,
    /// Signatures already known, with the file that shows each: findings with these
    /// signatures are counted but not minimised or written again.
    pub known: Vec<(String, String)>,
    /// Cases whose text contains one of these are skipped: a way to look past an open bug
    /// that every other case would otherwise run into (`--avoid sum_to`).
    pub avoid: Vec<String>,
}

/// One distinct finding of a campaign.
#[derive(Clone, Debug)]
pub struct Found {
    pub finding: Finding,
    pub signature: String,
    /// The first case that showed it: its index, source and corpus file.
    pub index: u64,
    pub source: Source,
    pub origin: String,
    pub original: Case,
    pub minimized: Case,
    /// How many cases showed it.
    pub hits: u64,
    /// The known finding file it matches, if any.
    pub known: Option<String>,
    /// The file it was written to.
    pub file: Option<PathBuf>,
}

/// Counts per target kind: cases, and cases that ran without any error (exit 0 and an empty
/// stderr), which says how deep generated programs get.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub by_target: BTreeMap<String, (u64, u64)>,
    pub by_source: BTreeMap<&'static str, (u64, u64)>,
}

#[derive(Debug)]
pub struct Summary {
    pub cases: u64,
    pub elapsed: Duration,
    pub findings: Vec<Found>,
    pub stats: Stats,
    /// Cases that could not be run at all (the binary is missing, say), with the reason.
    pub errors: Vec<String>,
}

impl Summary {
    pub fn new_findings(&self) -> impl Iterator<Item = &Found> {
        self.findings.iter().filter(|f| f.known.is_none())
    }
}

struct Shared {
    found: Vec<Found>,
    stats: Stats,
    errors: Vec<String>,
}

/// Runs a campaign. `log` receives one line per event worth telling (a new finding, progress).
pub fn run(runner: &Runner, corpus: &Corpus, cfg: &Config, log: &(dyn Fn(&str) + Sync)) -> Summary {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let shared = Mutex::new(Shared { found: Vec::new(), stats: Stats::default(), errors: Vec::new() });
    let last_report = Mutex::new(Instant::now());
    let worker = || loop {
        if cfg.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        if cfg.cases.is_some_and(|n| index >= n) {
            break;
        }
        let (case, source, origin) = make_case(cfg.seed, index, corpus);
        if cfg.avoid.iter().any(|a| case.text.windows(a.len().max(1)).any(|w| w == a.as_bytes())) {
            continue;
        }
        let outcome = match runner.run(&case) {
            Ok(o) => o,
            Err(e) => {
                let mut s = lock(&shared);
                s.errors.push(format!("case {index}: cannot run `ad`: {e}"));
                if s.errors.len() > 10 {
                    // The binary cannot be run at all; stop rather than fail a million times.
                    break;
                }
                continue;
            }
        };
        let finding = classify(&case.target, &outcome).filter(|f| !expected_hang(f, &case.text));
        let clean =
            finding.is_none() && outcome.status == crate::run::Status::Exited(0) && outcome.stderr.is_empty();
        {
            let mut s = lock(&shared);
            let t = s.stats.by_target.entry(case.target.kind()).or_default();
            t.0 += 1;
            t.1 += clean as u64;
            let t = s.stats.by_source.entry(source.name()).or_default();
            t.0 += 1;
            t.1 += clean as u64;
        }
        if let Some(finding) = finding {
            handle_finding(runner, cfg, &shared, finding, case, index, source, origin, log);
        }
        let mut last = lock(&last_report);
        if last.elapsed() >= Duration::from_secs(30) {
            *last = Instant::now();
            let done = next.load(Ordering::Relaxed).min(cfg.cases.unwrap_or(u64::MAX));
            let secs = start.elapsed().as_secs_f64();
            let distinct = lock(&shared).found.len();
            log(&format!(
                "{done} cases in {secs:.0} s ({:.1} cases/s), {distinct} distinct findings",
                done as f64 / secs.max(1e-9)
            ));
        }
    };
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(worker);
        }
    });
    let shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    let cases = next.load(Ordering::Relaxed).min(cfg.cases.unwrap_or(u64::MAX));
    let mut findings = shared.found;
    findings.sort_by_key(|f| f.index);
    Summary { cases, elapsed: start.elapsed(), findings, stats: shared.stats, errors: shared.errors }
}

/// A hang the program asked for: mutations and noise turn `while c < 3` into `while 3` and
/// `0..3` into `0..33333`, and a program that loops forever is not a bug in AD.
pub fn expected_hang(finding: &Finding, text: &[u8]) -> bool {
    if !matches!(finding, Finding::Timeout) {
        return false;
    }
    let tokens = minimize::split_tokens(text);
    let long_range = tokens.windows(3).any(|w| {
        let bound = w[2].trim_ascii_end();
        w[0].trim_ascii() == b"."
            && w[1].trim_ascii() == b"."
            && bound.first().is_some_and(|b| b.is_ascii_digit())
            && (bound.len() >= 4 || bound.contains(&b'e'))
    });
    long_range || tokens.iter().any(|t| t.trim_ascii_end() == b"while")
}

/// A poisoned lock means another worker panicked; its data is still usable for a report.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[allow(clippy::too_many_arguments)]
fn handle_finding(
    runner: &Runner,
    cfg: &Config,
    shared: &Mutex<Shared>,
    finding: Finding,
    case: Case,
    index: u64,
    source: Source,
    origin: String,
    log: &(dyn Fn(&str) + Sync),
) {
    let signature = finding.signature(&case.target);
    let known = if finding.is_specific() {
        cfg.known.iter().find(|(s, _)| *s == signature).map(|(_, f)| f.clone())
    } else {
        None
    };
    {
        let mut s = lock(shared);
        if let Some(f) = s.found.iter_mut().find(|f| f.signature == signature) {
            f.hits += 1;
            return;
        }
        // Claim the signature before minimising, so that another worker hitting it only
        // counts it.
        s.found.push(Found {
            finding: finding.clone(),
            signature: signature.clone(),
            index,
            source,
            origin: origin.clone(),
            original: case.clone(),
            minimized: case.clone(),
            hits: 1,
            known: known.clone(),
            file: None,
        });
    }
    if let Some(k) = &known {
        log(&format!("case {index} ({}, {}): known finding ({k}): {finding}", source.name(), case.target));
        return;
    }
    log(&format!("case {index} ({}, {}): {finding}; minimising", source.name(), case.target));
    let minimized = minimize_case(runner, &case, &signature, cfg.minimize);
    let file = cfg.out_dir.as_ref().and_then(|dir| {
        let path = dir.join(format!("{}-{:08x}.ad", finding.kind(), fnv(&signature)));
        let text = finding_file(&minimized, &finding);
        let written = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, &text));
        match written {
            Ok(()) => Some(path),
            Err(e) => {
                log(&format!("cannot write {}: {e}", path.display()));
                None
            }
        }
    });
    log(&format!(
        "  minimised ({} -> {} bytes){}:\n{}",
        case.text.len(),
        minimized.text.len(),
        file.as_ref().map(|p| format!(", written to {}", p.display())).unwrap_or_default(),
        indent(&finding_file(&minimized, &finding))
    ));
    let mut s = lock(shared);
    if let Some(f) = s.found.iter_mut().find(|f| f.signature == signature) {
        f.minimized = minimized;
        f.file = file;
    }
}

/// Shrinks a case while it keeps the finding's signature.
pub fn minimize_case(runner: &Runner, case: &Case, signature: &str, budget: Budget) -> Case {
    let target = case.target.clone();
    let mut still_fails = |text: &[u8]| {
        let candidate = Case::new(target.clone(), text.to_vec());
        match runner.run(&candidate) {
            Ok(o) => classify(&target, &o)
                .is_some_and(|f| f.signature(&target) == signature && !expected_hang(&f, text)),
            Err(_) => false,
        }
    };
    Case::new(case.target.clone(), minimize::minimize(&case.text, budget, &mut still_fails))
}

/// The text of a finding or regression file: the `# fuzz:` line, a line describing the
/// symptom, then the case.
pub fn finding_file(case: &Case, finding: &Finding) -> Vec<u8> {
    let description: String = finding.to_string().replace('\n', " ").chars().take(200).collect();
    let mut text = format!("# fuzz: {}\n# {description}\n", case.target).into_bytes();
    text.extend_from_slice(&case.text);
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text
}

fn indent(text: &[u8]) -> String {
    String::from_utf8_lossy(text).lines().map(|l| format!("    {l}\n")).collect()
}

/// FNV-1a: a stable hash for file names (std's hasher is randomised per process).
pub fn fnv(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
