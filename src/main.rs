//! The `ad` command line: argument parsing and exit codes only; the work is in the crates.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

use ad_driver::derive::{self, DeriveMode, ShapeOpt};
use ad_driver::golden;
use ad_driver::Session;
use ad_syntax::Diagnostic;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

mod fmt;

// AD allocates many small objects (IR equations, arrays of small programs); mimalloc is
// about twice as fast as the system allocator on that load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ad", version, about = "A small array language whose programs can be differentiated")]
struct Cli {
    /// Without a command, `ad` starts the REPL.
    #[command(subcommand)]
    command: Option<Command>,
    /// The memory one array may use, e.g. `512MiB` or `4GiB` (default: the machine's
    /// memory). Larger arrays, derived Jacobians and Hessians included, are errors.
    #[arg(long = "ad-memory", value_name = "SIZE", global = true, value_parser = ad_driver::memory::parse_size)]
    ad_memory: Option<u64>,
    /// Run everything in the interpreter, the reference semantics: loops are not planned
    /// into one buffer and elementwise chains are not run in blocks.
    #[arg(long = "no-compile", global = true)]
    no_compile: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The interactive REPL, loading FILE first if given.
    Repl { file: Option<String> },
    /// Run a script.
    Run {
        file: String,
        /// Significant digits when printing values (1 to 17).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=17))]
        precision: u8,
    },
    /// Parse and shape-check a script without running it.
    Check { file: String },
    /// Print a program AD derives from a function of a file.
    Derive {
        /// What to derive: ir (the function lowered), jvp, jvp2 (forward mode by two
        /// reverse passes), vjp, grad, hvp, hessian or jacobian (with its plan).
        #[arg(value_parser = PossibleValuesParser::new(DeriveMode::names()).try_map(|s| s.parse::<DeriveMode>()))]
        mode: DeriveMode,
        file: String,
        /// The function's name.
        function: String,
        /// Shape of a parameter or a dimension name, e.g. `--shape x=[3]` or `--shape n=[5]`.
        #[arg(long = "shape", value_name = "NAME=[d,..]")]
        shapes: Vec<ShapeOpt>,
        /// The batch size of `vmap`'s program (the size of the axis it adds to every parameter).
        #[arg(long, value_name = "N", default_value_t = derive::VMAP_BATCH, value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
        batch: usize,
        /// For `vmap`: the axis of each parameter that carries the batch, or `none` for a
        /// parameter the batch shares, e.g. `--in-axes none,0` (one value maps all; JAX's
        /// `in_axes`). By default every parameter is mapped at axis 0.
        #[arg(long, value_name = "AXES", allow_hyphen_values = true)]
        in_axes: Option<derive::InAxes>,
    },
    /// Run golden tests: `.ad` files with `#!` directives (files or directories).
    Test {
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Rewrite the expected files with what the tests produce.
        #[arg(long)]
        bless: bool,
    },
    /// Format scripts in place (a directory: the `.ad` files under it); `-` formats standard
    /// input to standard output.
    Fmt {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// Change nothing; name the files that would change and exit with status 1.
        #[arg(long)]
        check: bool,
    },
    /// The language server (LSP), over standard input and output, for editors.
    Lsp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Deeply nested programs recurse deeply in the parser and in lowering; give them room,
    // within what an address-space limit (`ulimit -v`) leaves.
    let stack =
        ad_driver::memory::address_space_limit().map_or(1 << 30, |l| (l / 8).clamp(16 << 20, 1 << 30));
    let worker = std::thread::Builder::new().stack_size(stack as usize).spawn(move || run(cli));
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("internal error: ad stopped unexpectedly (this is a bug in AD)");
            ExitCode::from(101)
        }
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn report(session: &Session, errors: &[Diagnostic]) -> ExitCode {
    eprint!("{}", ad_syntax::render(&session.sources, errors, color()));
    ExitCode::from(1)
}

/// Reads a script named on the command line; one that cannot be read is bad usage (exit 2,
/// DESIGN §5), not an error in a program.
fn read(path: &str) -> Result<String, ExitCode> {
    ad_driver::read_source(path).map_err(|m| {
        eprintln!("Error: {m}");
        ExitCode::from(2)
    })
}

/// Writes to standard output. A closed pipe (`ad derive ... | head -1`) is not an error:
/// the reader has what it wanted, so the command ends quietly with status 0.
fn out(text: &str) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(_) => Err(ExitCode::SUCCESS),
    }
}

/// The exit status of a script that stopped with `errors`: quiet success when it stopped
/// because its output was closed, a report otherwise.
fn finish(session: &Session, errors: &[Diagnostic]) -> ExitCode {
    if session.output_closed() {
        ExitCode::SUCCESS
    } else {
        report(session, errors)
    }
}

fn run(cli: Cli) -> ExitCode {
    ad_driver::memory::configure(cli.ad_memory);
    ad_eval::set_compile(!cli.no_compile);
    let command = match cli.command {
        None => return ad_repl::main(None),
        Some(Command::Repl { file }) => return ad_repl::main(file),
        Some(c) => c,
    };
    let command = match command {
        Command::Fmt { files, check } => return fmt::run(&files, check, color(), out),
        Command::Lsp => return ExitCode::from(ad_lsp::run_stdio()),
        c => c,
    };
    let mut session = Session::new(Box::new(std::io::stdout()));
    match command {
        Command::Repl { .. } | Command::Fmt { .. } | Command::Lsp => unreachable!("handled above"),
        Command::Run { file, precision } => {
            let text = match read(&file) {
                Ok(t) => t,
                Err(code) => return code,
            };
            session.precision = precision as usize;
            // Figures are drawn when the output is a terminal (else it stays data), and
            // progress bars shown when standard error is one.
            if std::io::stdout().is_terminal() {
                session.set_screen(Some(ad_driver::plot::Screen::stdout()));
            }
            session.set_progress(std::io::stderr().is_terminal());
            match session.run_source(&file, &text) {
                Ok(()) => {
                    session.show_pending();
                    ExitCode::SUCCESS
                }
                Err(errors) => finish(&session, &errors),
            }
        }
        Command::Check { file } => {
            let text = match read(&file) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let errors = session.check_source(&file, &text);
            if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                report(&session, &errors)
            }
        }
        Command::Derive { mode, file, function, shapes, batch, in_axes } => {
            if in_axes.is_some() && mode != DeriveMode::Vmap {
                eprintln!("error: `--in-axes` is for `ad derive vmap`, not `ad derive {}`", mode.name());
                return ExitCode::from(2);
            }
            let text = match read(&file) {
                Ok(t) => t,
                Err(code) => return code,
            };
            if let Err(errors) = derive::load(&mut session, &file, &text) {
                return report(&session, &errors);
            }
            // A function name that the file does not define is a bad argument (exit 2), not
            // an error in the program.
            if session.global_value(&function).is_none() {
                report(&session, &[derive::missing_function(&session, &function)]);
                return ExitCode::from(2);
            }
            match derive::derive_named(
                &mut session,
                &function,
                &shapes,
                mode,
                &derive::VmapOpts { batch, in_axes },
            )
            .and_then(|d| d.text(&session))
            {
                Ok(text) => out(&text).err().unwrap_or(ExitCode::SUCCESS),
                Err(e) => report(&session, &[e]),
            }
        }
        Command::Test { paths, bless } => {
            let files = golden::collect(&paths);
            if files.is_empty() {
                eprintln!("Error: no test files (.ad files with `#!` directives) under the given paths");
                return ExitCode::from(2);
            }
            let (mut passed, mut failed) = (0, 0);
            for f in &files {
                for o in golden::run_file(f, bless) {
                    if o.passed {
                        passed += 1;
                    } else {
                        failed += 1;
                        if let Err(code) =
                            out(&format!("FAILED {} ({})\n{}\n", f.display(), o.directive, o.detail))
                        {
                            return code;
                        }
                    }
                }
            }
            if let Err(code) = out(&format!("{passed} passed, {failed} failed ({} files)\n", files.len())) {
                return code;
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
