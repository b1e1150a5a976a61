//! The server's state and its answer to each message, independent of how messages travel
//! (`lib.rs` connects it to stdio; tests drive it directly).
//!
//! Lifecycle as the protocol requires: requests before `initialize` get
//! `ServerNotInitialized`; after `shutdown`, `InvalidRequest`; `exit` ends the server (status
//! 0 after a shutdown, 1 without). Unknown methods get `MethodNotFound`, parameters that do
//! not parse `InvalidParams`, and a question about a document that is not open an empty
//! answer. Nothing a client sends can stop the server: every handler runs under
//! `catch_unwind`, and an internal error becomes an `InternalError` response.

use crate::analysis::{self, Binder, Binding, Node};
use crate::lines::LineIndex;
use crate::shapes;
use crate::signatures::{self, arity, Callable};
use ad_syntax::ast::{Expr, ExprKind, Module};
use ad_syntax::trivia::Trivia;
use ad_syntax::{FileId, Span};
use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::*;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the main loop does after a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `exit` arrived: end with this status.
    Exit(u8),
}

#[derive(PartialEq, Eq)]
enum State {
    Uninitialized,
    Running,
    ShutDown,
}

struct Document {
    uri: Uri,
    text: String,
    version: i32,
}

pub struct Server {
    state: State,
    docs: HashMap<String, Document>,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

/// What the server can do, for `initialize`.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions::default()),
        definition_provider: Some(OneOf::Left(true)),
        signature_help_provider: Some(SignatureHelpOptions {
            trigger_characters: Some(vec!["(".into(), ",".into()]),
            retrigger_characters: None,
            work_done_progress_options: WorkDoneProgressOptions::default(),
        }),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

fn error(id: RequestId, code: ErrorCode, message: impl Into<String>) -> Message {
    Message::Response(Response::new_err(id, code as i32, message.into()))
}

/// A file's name for its reports: the path of a `file:` URI, else the URI.
fn doc_name(uri: &Uri) -> String {
    match uri.scheme() {
        Some(s) if s.as_str() == "file" => uri.path().as_str().to_string(),
        _ => uri.as_str().to_string(),
    }
}

fn markdown(value: String) -> MarkupContent {
    MarkupContent { kind: MarkupKind::Markdown, value }
}

fn code(text: &str) -> String {
    format!("```ad\n{text}\n```")
}

impl Server {
    pub fn new() -> Server {
        Server { state: State::Uninitialized, docs: HashMap::new() }
    }

    /// Handles one message from the client; returns what to send back.
    pub fn handle(&mut self, msg: Message) -> (Vec<Message>, Flow) {
        match msg {
            Message::Request(req) => (vec![self.request(req)], Flow::Continue),
            Message::Notification(n) => self.notification(n),
            Message::Response(_) => (Vec::new(), Flow::Continue),
        }
    }

    fn request(&mut self, req: Request) -> Message {
        let id = req.id.clone();
        match (&self.state, req.method.as_str()) {
            (State::Uninitialized, "initialize") => {
                self.state = State::Running;
                let result = InitializeResult {
                    capabilities: capabilities(),
                    server_info: Some(ServerInfo {
                        name: "ad".into(),
                        version: Some(env!("CARGO_PKG_VERSION").into()),
                    }),
                };
                Message::Response(Response::new_ok(id, result))
            }
            (State::Uninitialized, _) => {
                error(id, ErrorCode::ServerNotInitialized, "the server is not initialized yet")
            }
            (State::ShutDown, _) => error(id, ErrorCode::InvalidRequest, "the server is shutting down"),
            (State::Running, "initialize") => error(id, ErrorCode::InvalidRequest, "already initialized"),
            (State::Running, "shutdown") => {
                self.state = State::ShutDown;
                Message::Response(Response::new_ok(id, ()))
            }
            (State::Running, method) => {
                let answer = catch_unwind(AssertUnwindSafe(|| self.query(method, req.params)));
                match answer {
                    Ok(Ok(value)) => Message::Response(Response { id, response_result: Ok(value) }),
                    Ok(Err((code, message))) => error(id, code, message),
                    Err(_) => error(id, ErrorCode::InternalError, "internal error in AD (this is a bug)"),
                }
            }
        }
    }

    fn query(&self, method: &str, params: Value) -> Result<Value, (ErrorCode, String)> {
        fn parse<P: serde::de::DeserializeOwned>(v: Value) -> Result<P, (ErrorCode, String)> {
            serde_json::from_value(v)
                .map_err(|e| (ErrorCode::InvalidParams, format!("invalid parameters: {e}")))
        }
        fn json<T: serde::Serialize>(v: T) -> Result<Value, (ErrorCode, String)> {
            serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
        }
        match method {
            "textDocument/hover" => json(self.hover(parse(params)?)),
            "textDocument/completion" => json(self.completion(parse(params)?)),
            "textDocument/definition" => json(self.definition(parse(params)?)),
            "textDocument/signatureHelp" => json(self.signature_help(parse(params)?)),
            "textDocument/formatting" => json(self.formatting(parse(params)?)),
            _ => Err((ErrorCode::MethodNotFound, format!("unknown method `{method}`"))),
        }
    }

    fn notification(&mut self, n: Notification) -> (Vec<Message>, Flow) {
        if n.method == "exit" {
            return (Vec::new(), Flow::Exit(if self.state == State::ShutDown { 0 } else { 1 }));
        }
        if self.state != State::Running {
            return (Vec::new(), Flow::Continue);
        }
        let out = catch_unwind(AssertUnwindSafe(|| self.document_notification(n))).unwrap_or_default();
        (out, Flow::Continue)
    }

    fn document_notification(&mut self, n: Notification) -> Vec<Message> {
        let uri = match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(n.params) else {
                    return vec![];
                };
                let d = p.text_document;
                let key = d.uri.as_str().to_string();
                self.docs.insert(key, Document { uri: d.uri.clone(), text: d.text, version: d.version });
                d.uri
            }
            "textDocument/didChange" => {
                let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(n.params) else {
                    return vec![];
                };
                let Some(doc) = self.docs.get_mut(p.text_document.uri.as_str()) else { return vec![] };
                for change in p.content_changes {
                    match change.range {
                        None => doc.text = change.text,
                        Some(r) => {
                            let ix = LineIndex::new(&doc.text);
                            let (a, b) = (ix.offset(r.start), ix.offset(r.end));
                            let (a, b) = (a.min(b), a.max(b));
                            doc.text.replace_range(a..b, &change.text);
                        }
                    }
                }
                doc.version = p.text_document.version;
                p.text_document.uri
            }
            "textDocument/didClose" => {
                let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(n.params) else {
                    return vec![];
                };
                self.docs.remove(p.text_document.uri.as_str());
                let clear =
                    PublishDiagnosticsParams { uri: p.text_document.uri, diagnostics: vec![], version: None };
                return vec![publish(clear)];
            }
            _ => return vec![],
        };
        match self.docs.get(uri.as_str()) {
            Some(doc) => vec![publish(self.diagnostics(doc))],
            None => vec![],
        }
    }

    fn doc(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str())
    }

    /// The reports of `ad check`, as LSP diagnostics.
    fn diagnostics(&self, doc: &Document) -> PublishDiagnosticsParams {
        let ix = LineIndex::new(&doc.text);
        let checked = catch_unwind(AssertUnwindSafe(|| shapes::check(&doc_name(&doc.uri), &doc.text)));
        let diagnostics = match checked {
            Ok((file, ds)) => ds.iter().map(|d| lsp_diagnostic(d, file, &doc.uri, &ix)).collect(),
            Err(_) => vec![lsp_types::Diagnostic {
                message: "internal error in AD while checking this file (this is a bug)".into(),
                severity: Some(DiagnosticSeverity::ERROR),
                source: Some("ad".into()),
                ..Default::default()
            }],
        };
        PublishDiagnosticsParams { uri: doc.uri.clone(), diagnostics, version: Some(doc.version) }
    }

    fn hover(&self, p: HoverParams) -> Option<Hover> {
        let pos = p.text_document_position_params;
        let doc = self.doc(&pos.text_document.uri)?;
        let ix = LineIndex::new(&doc.text);
        let offset = ix.offset(pos.position);
        let mut l = shapes::load(&doc_name(&doc.uri), &doc.text);
        let loc = analysis::locate(&l.module, offset);
        let (text, span) = match loc.node {
            Node::None => return None,
            Node::Binder(b) => {
                let id = b.ident();
                let text = match b {
                    Binder::DefName(d) => {
                        let defs = analysis::resolve(&loc.frames, &d.name.name);
                        function_hover(&doc.text, &defs)
                    }
                    Binder::LambdaParam(i) => format!("{}\n\na parameter of a function", code(&i.name)),
                    Binder::Param(d, k) => {
                        let p = &d.params[k];
                        let ty = shapes::type_at(&mut l.session, &l.module, &loc);
                        let head = match ty {
                            Some(t) => format!("{}: {t}", p.name.name),
                            None => analysis::param_text(p),
                        };
                        format!("{}\n\na parameter of `{}`", code(&head), d.name.name)
                    }
                    Binder::Let(i) | Binder::Assign(i) | Binder::For(i) => {
                        match shapes::type_at(&mut l.session, &l.module, &loc) {
                            Some(t) => code(&format!("{}: {t}", i.name)),
                            None => code(&i.name),
                        }
                    }
                };
                (text, id.span)
            }
            Node::Expr(e) => {
                let text = match &e.kind {
                    ExprKind::Var(name) => {
                        let bindings = analysis::resolve(&loc.frames, name);
                        if !bindings.is_empty() && bindings.iter().all(Binding::is_function) {
                            function_hover(&doc.text, &bindings)
                        } else if let (true, Some(c)) = (bindings.is_empty(), signatures::library(name)) {
                            library_hover(&c)
                        } else {
                            match shapes::type_at(&mut l.session, &l.module, &loc) {
                                Some(t) => code(&format!("{name}: {t}")),
                                None => code(name),
                            }
                        }
                    }
                    _ => code(&shapes::type_at(&mut l.session, &l.module, &loc)?),
                };
                (text, e.span)
            }
        };
        Some(Hover {
            contents: HoverContents::Markup(markdown(text)),
            range: Some(ix.range(span.start as usize..span.end as usize)),
        })
    }

    fn completion(&self, p: CompletionParams) -> Option<CompletionResponse> {
        let pos = p.text_document_position;
        let doc = self.doc(&pos.text_document.uri)?;
        let offset = LineIndex::new(&doc.text).offset(pos.position);
        let trivia = Trivia::scan(&doc.text);
        // Nothing to complete in a comment or a string.
        let in_comment = trivia.comments.iter().any(|c| c.start < offset && offset <= c.end);
        let in_string = trivia
            .token_index_at(offset)
            .and_then(|i| trivia.tokens.get(i))
            .is_some_and(|t| t.start < offset && doc.text[t.clone()].starts_with('"'));
        if in_comment || in_string {
            return Some(CompletionResponse::Array(Vec::new()));
        }
        let (module, _) = ad_syntax::parser::parse(FileId(0), &doc.text);
        let loc = analysis::locate(&module, offset);
        let mut items: Vec<CompletionItem> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add = |item: CompletionItem| {
            if seen.insert(item.label.clone()) {
                items.push(item);
            }
        };
        for (name, b) in analysis::visible(&loc.frames) {
            let (kind, detail) = match &b {
                Binding::Def(d) => {
                    (CompletionItemKind::FUNCTION, Some(format!("def {}", analysis::signature(d))))
                }
                Binding::Param(d, k) => (
                    CompletionItemKind::VARIABLE,
                    Some(format!("parameter {}", analysis::param_text(&d.params[*k]))),
                ),
                _ => (CompletionItemKind::VARIABLE, None),
            };
            add(CompletionItem { label: name, kind: Some(kind), detail, ..Default::default() });
        }
        let prelude = signatures::prelude();
        for (name, (_, c)) in &prelude.functions {
            add(library_item(name, c));
        }
        for name in &prelude.constants {
            add(CompletionItem {
                label: name.clone(),
                kind: Some(CompletionItemKind::CONSTANT),
                detail: Some("constant (the prelude)".into()),
                ..Default::default()
            });
        }
        for (name, c) in signatures::builtins() {
            add(library_item(name, c));
        }
        for k in ["def", "let", "for", "in", "while", "if", "else", "true", "false", "import"] {
            add(CompletionItem {
                label: k.into(),
                kind: Some(CompletionItemKind::KEYWORD),
                ..Default::default()
            });
        }
        Some(CompletionResponse::Array(items))
    }

    fn definition(&self, p: GotoDefinitionParams) -> Option<GotoDefinitionResponse> {
        let pos = p.text_document_position_params;
        let doc = self.doc(&pos.text_document.uri)?;
        let ix = LineIndex::new(&doc.text);
        let (module, _) = ad_syntax::parser::parse(FileId(0), &doc.text);
        let loc = analysis::locate(&module, ix.offset(pos.position));
        let spans: Vec<Span> = match loc.node {
            Node::Expr(Expr { kind: ExprKind::Var(name), .. }) => {
                analysis::resolve(&loc.frames, name).iter().map(Binding::span).collect()
            }
            Node::Binder(Binder::Assign(i)) => {
                analysis::resolve(&loc.frames, &i.name).iter().map(Binding::span).collect()
            }
            Node::Binder(b) => vec![b.ident().span],
            _ => return None,
        };
        if spans.is_empty() {
            return None;
        }
        let locations = spans
            .into_iter()
            .map(|s| Location { uri: doc.uri.clone(), range: ix.range(s.start as usize..s.end as usize) })
            .collect();
        Some(GotoDefinitionResponse::Array(locations))
    }

    fn signature_help(&self, p: SignatureHelpParams) -> Option<SignatureHelp> {
        let pos = p.text_document_position_params;
        let doc = self.doc(&pos.text_document.uri)?;
        let offset = LineIndex::new(&doc.text).offset(pos.position);
        let trivia = Trivia::scan(&doc.text);
        let (name, callee, active) = signatures::call_at(&doc.text, &trivia, offset)?;
        let (module, _) = ad_syntax::parser::parse(FileId(0), &doc.text);
        let callable = match user_callable(&doc.text, &module, callee, &name) {
            Some(c) => c,
            None => signatures::library(&name)?,
        };
        if callable.signatures.is_empty() {
            return None;
        }
        let signatures: Vec<SignatureInformation> = callable
            .signatures
            .iter()
            .map(|label| SignatureInformation {
                label: label.clone(),
                documentation: callable.doc.clone().map(|d| Documentation::MarkupContent(markdown(d))),
                parameters: Some(parameter_labels(label)),
                active_parameter: None,
            })
            .collect();
        let active_signature = callable
            .signatures
            .iter()
            .position(|s| arity(s) > active || s.ends_with("...)"))
            .unwrap_or(callable.signatures.len().saturating_sub(1));
        Some(SignatureHelp {
            signatures,
            active_signature: Some(active_signature as u32),
            active_parameter: Some(active as u32),
        })
    }

    fn formatting(&self, p: DocumentFormattingParams) -> Option<Vec<TextEdit>> {
        let doc = self.doc(&p.text_document.uri)?;
        let formatted = ad_syntax::format::format(FileId(0), &doc.text).ok()?;
        if formatted == doc.text {
            return Some(Vec::new());
        }
        let ix = LineIndex::new(&doc.text);
        let range = Range { start: Position { line: 0, character: 0 }, end: ix.end() };
        Some(vec![TextEdit { range, new_text: formatted }])
    }
}

fn publish(p: PublishDiagnosticsParams) -> Message {
    Message::Notification(Notification::new("textDocument/publishDiagnostics".into(), p))
}

/// One of our diagnostics for a client: located at its first label in this file (at the
/// start of the file if none is), with the hint and notes after the message and every
/// label as related information.
fn lsp_diagnostic(
    d: &ad_syntax::Diagnostic,
    file: FileId,
    uri: &Uri,
    ix: &LineIndex,
) -> lsp_types::Diagnostic {
    let ours: Vec<&ad_syntax::Label> = d.labels.iter().filter(|l| l.span.file == file).collect();
    let range =
        ours.first().map_or(Range::default(), |l| ix.range(l.span.start as usize..l.span.end as usize));
    let mut message = d.message.clone();
    if let Some(l) = ours.first().filter(|l| !l.message.is_empty() && l.message != d.message) {
        message.push_str(&format!("\n{}", l.message));
    }
    if let Some(h) = &d.hint {
        message.push_str(&format!("\nhelp: {h}"));
    }
    for n in &d.notes {
        message.push_str(&format!("\nnote: {n}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = ours
        .iter()
        .skip(1)
        .filter(|l| !l.message.is_empty())
        .map(|l| DiagnosticRelatedInformation {
            location: Location {
                uri: uri.clone(),
                range: ix.range(l.span.start as usize..l.span.end as usize),
            },
            message: l.message.clone(),
        })
        .collect();
    lsp_types::Diagnostic {
        range,
        severity: Some(DiagnosticSeverity::ERROR),
        source: Some("ad".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

/// Hover text for a function defined in the file: its signatures, and the comment above
/// the first definition.
fn function_hover(text: &str, defs: &[Binding]) -> String {
    let mut sigs = Vec::new();
    let mut doc = None;
    for b in defs {
        if let Binding::Def(d) = b {
            sigs.push(format!("def {}", analysis::signature(d)));
            if doc.is_none() {
                doc = analysis::doc_comment(text, d.span.start as usize);
            }
        }
    }
    let mut out = code(&sigs.join("\n"));
    if let Some(d) = doc {
        out.push_str("\n\n");
        out.push_str(&d);
    }
    out
}

fn library_hover(c: &Callable) -> String {
    let mut out = code(&c.signatures.join("\n"));
    if let Some(d) = &c.doc {
        out.push_str("\n\n");
        out.push_str(d);
    }
    out
}

fn library_item(name: &str, c: &Callable) -> CompletionItem {
    CompletionItem {
        label: name.to_string(),
        kind: Some(CompletionItemKind::FUNCTION),
        detail: Some(c.signatures.join(" | ")),
        documentation: c.doc.clone().map(|d| Documentation::MarkupContent(markdown(d))),
        ..Default::default()
    }
}

/// The signatures of a function the file defines, as seen from the call at `callee`.
fn user_callable(text: &str, module: &Module, callee: usize, name: &str) -> Option<Callable> {
    let loc = analysis::locate(module, callee);
    let bindings = analysis::resolve(&loc.frames, name);
    if bindings.is_empty() {
        return None;
    }
    let mut c = Callable::default();
    for b in &bindings {
        match b {
            Binding::Def(d) => {
                c.signatures.push(analysis::signature(d));
                if c.doc.is_none() {
                    c.doc = analysis::doc_comment(text, d.span.start as usize);
                }
            }
            // A variable: what function it holds is not known here (no signature).
            _ => return Some(Callable::default()),
        }
    }
    c.signatures.sort_by_key(|s| arity(s));
    Some(c)
}

/// The parameters of a signature `f(a, b: [n])` as offsets (UTF-16 units) into it.
fn parameter_labels(label: &str) -> Vec<ParameterInformation> {
    let Some(open) = label.find('(') else { return Vec::new() };
    let inner_end = label.rfind(')').unwrap_or(label.len());
    let mut out = Vec::new();
    let units = |s: &str| s.encode_utf16().count() as u32;
    let mut start = open + 1;
    let mut depth = 0;
    for (i, c) in label[open + 1..inner_end].char_indices().map(|(i, c)| (i + open + 1, c)) {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    if label[start..inner_end].trim().is_empty() && out.is_empty() {
        return Vec::new();
    }
    out.push((start, inner_end));
    out.into_iter()
        .map(|(a, b)| {
            let a = a + (label[a..b].len() - label[a..b].trim_start().len());
            ParameterInformation {
                label: ParameterLabel::LabelOffsets([units(&label[..a]), units(&label[..b])]),
                documentation: None,
            }
        })
        .collect()
}
