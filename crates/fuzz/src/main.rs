//! The long fuzzing run:
//!
//! ```sh
//! cargo run --release -p ad-fuzz -- --minutes 30 [--seed N] [--jobs 2]
//! ```
//!
//! It builds the release `ad` binary (unless `--bin` names one), runs cases until the time
//! is up, prints each new finding with its minimised reproducer, and writes those to
//! `target/fuzz-findings/` (`--out DIR`). Findings that match a file of
//! `tests/fuzz/findings/` are counted but not written again.

use ad_fuzz::campaign::{self, Config};
use ad_fuzz::corpus::Corpus;
use ad_fuzz::minimize::Budget;
use ad_fuzz::run::{Limits, Runner};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: ad-fuzz [--minutes M | --cases N] [--seed N] [--jobs J] [OPTIONS]
       ad-fuzz --seed N --case I
       ad-fuzz --minimize FILE

  --minutes M        run for M minutes (default 30)
  --cases N          stop after N cases instead
  --seed N           the run's seed (default: from the clock; printed so the run can be repeated)
  --jobs J           cases run at once (default 1)
  --bin PATH         the `ad` binary (default: build and use target/release/ad)
  --out DIR          where minimised findings go (default target/fuzz-findings)
  --time-limit SECS  per-case time limit (default 10)
  --memory-mib MIB   per-case address-space limit (default 4096)
  --minimize-secs S  time spent minimising each finding (default 120)
  --avoid TEXT       skip cases whose text contains TEXT (repeatable): to look past an open bug
  --case I           print case I of the seed, run it, and say what it finds
  --minimize FILE    run a file that starts with `# fuzz: TARGET` lines and print it minimised";

struct Options {
    minutes: f64,
    cases: Option<u64>,
    seed: Option<u64>,
    jobs: usize,
    bin: Option<PathBuf>,
    out: Option<PathBuf>,
    time_limit: f64,
    memory_mib: u64,
    minimize_secs: u64,
    case: Option<u64>,
    minimize: Option<PathBuf>,
    avoid: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        minutes: 30.0,
        cases: None,
        seed: None,
        jobs: 1,
        bin: None,
        out: None,
        time_limit: 10.0,
        memory_mib: 4096,
        minimize_secs: 120,
        case: None,
        minimize: None,
        avoid: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("`{a}` needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|_| format!("`{a}` takes a number, not `{v}`"));
        match a.as_str() {
            "--minutes" => o.minutes = number(value()?)?,
            "--cases" => o.cases = Some(number(value()?)? as u64),
            "--seed" => o.seed = Some(number(value()?)? as u64),
            "--jobs" => o.jobs = (number(value()?)? as usize).max(1),
            "--bin" => o.bin = Some(PathBuf::from(value()?)),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--time-limit" => o.time_limit = number(value()?)?,
            "--memory-mib" => o.memory_mib = number(value()?)? as u64,
            "--minimize-secs" => o.minimize_secs = number(value()?)? as u64,
            "--case" => o.case = Some(number(value()?)? as u64),
            "--minimize" => o.minimize = Some(PathBuf::from(value()?)),
            "--avoid" => o.avoid.push(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(o)
}

/// The repository's root, known when this crate was compiled.
fn root() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    path.canonicalize().unwrap_or(path)
}

/// Builds the release `ad` binary and returns its path.
fn build_ad() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the release `ad` binary...");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "ad", "--bin", "ad"])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("`cargo build --release -p ad` failed".into());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    Ok(target.join("release").join("ad"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(m) => {
            if !m.is_empty() {
                eprintln!("error: {m}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let bin = match o.bin.clone().map(Ok).unwrap_or_else(build_ad) {
        Ok(b) => b,
        Err(m) => {
            eprintln!("error: {m}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits { time: Duration::from_secs_f64(o.time_limit), memory_kib: o.memory_mib * 1024 };
    let runner = match Runner::new(&bin, limits, Some(&root().join("examples"))) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot make a scratch directory: {e}");
            return ExitCode::from(2);
        }
    };
    // The benchmarks are heavy by design (a 100,000-step loop): their mutants time out
    // without telling anything new.
    let corpus = Corpus::load(&root(), Corpus::ALL).without("bench/");
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
    });
    if let Some(i) = o.case {
        return show_case(&runner, &corpus, seed, i);
    }
    if let Some(file) = &o.minimize {
        let budget = Budget { runs: 5000, time: Duration::from_secs(o.minimize_secs) };
        return minimize_file(&runner, file, budget);
    }
    eprintln!("finding out what tests/fuzz/findings/ already shows...");
    let known = ad_fuzz::regress::known_signatures(&runner, &root().join("tests/fuzz/findings"));
    let out_dir = o.out.clone().unwrap_or_else(|| root().join("target/fuzz-findings"));
    let cfg = Config {
        seed,
        cases: o.cases,
        duration: if o.cases.is_some() { None } else { Some(Duration::from_secs_f64(o.minutes * 60.0)) },
        jobs: o.jobs,
        minimize: Budget { runs: 5000, time: Duration::from_secs(o.minimize_secs) },
        out_dir: Some(out_dir.clone()),
        known,
        avoid: o.avoid.clone(),
    };
    eprintln!(
        "fuzzing {} with seed {seed}, {} job(s), {} corpus files, {} known findings",
        bin.display(),
        cfg.jobs,
        corpus.files.len(),
        cfg.known.len()
    );
    let summary = campaign::run(&runner, &corpus, &cfg, &|line| eprintln!("{line}"));
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "\n{} cases in {secs:.0} s ({:.1} cases/s), seed {seed}",
        summary.cases,
        summary.cases as f64 / secs.max(1e-9)
    );
    println!("cases without any error, by target and by source:");
    for (k, (n, clean)) in &summary.stats.by_target {
        println!("  {k:<16} {clean:>6} / {n:<6}");
    }
    for (k, (n, clean)) in &summary.stats.by_source {
        println!("  {k:<16} {clean:>6} / {n:<6}");
    }
    for e in &summary.errors {
        println!("error: {e}");
    }
    println!("{} distinct findings ({} new):", summary.findings.len(), summary.new_findings().count());
    for f in &summary.findings {
        let place = match (&f.known, &f.file) {
            (Some(k), _) => format!("known: tests/fuzz/findings/{k}"),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "not written".into(),
        };
        println!(
            "  {} in `{}` (x{}, first case {} of seed {seed}) -> {place}",
            f.finding,
            f.original.target.kind(),
            f.hits,
            f.index
        );
    }
    if summary.new_findings().count() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn show_case(runner: &Runner, corpus: &Corpus, seed: u64, index: u64) -> ExitCode {
    let (case, source, origin) = campaign::make_case(seed, index, corpus);
    println!("# case {index} of seed {seed}: {} {origin}", source.name());
    println!("# fuzz: {}", case.target);
    println!("{}", case.text_lossy());
    match runner.run(&case) {
        Ok(outcome) => {
            println!("# status {:?} after {:.2} s", outcome.status, outcome.elapsed.as_secs_f64());
            println!("# stdout:\n{}", String::from_utf8_lossy(&outcome.stdout));
            println!("# stderr:\n{}", outcome.stderr);
            match ad_fuzz::classify::classify(&case.target, &outcome) {
                Some(f) => println!("# finding: {f}"),
                None => println!("# no finding"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot run `ad`: {e}");
            ExitCode::from(2)
        }
    }
}

fn minimize_file(runner: &Runner, path: &std::path::Path, budget: Budget) -> ExitCode {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let targets = match ad_fuzz::target::file_targets(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    // The header lines are comments; the case is what follows them.
    let body: Vec<u8> = text
        .split_inclusive(|&b| b == b'\n')
        .skip_while(|l| l.starts_with(b"#"))
        .flat_map(|l| l.iter().copied())
        .collect();
    for target in targets {
        let case = ad_fuzz::target::Case::new(target, body.clone());
        let finding = match runner.run(&case) {
            Ok(o) => ad_fuzz::classify::classify(&case.target, &o),
            Err(e) => {
                eprintln!("error: cannot run `ad`: {e}");
                return ExitCode::from(2);
            }
        };
        match finding {
            None => println!("# fuzz: {}\n# no finding", case.target),
            Some(f) => {
                let small = campaign::minimize_case(runner, &case, &f.signature(&case.target), budget);
                print!("{}", String::from_utf8_lossy(&campaign::finding_file(&small, &f)));
            }
        }
    }
    ExitCode::SUCCESS
}
