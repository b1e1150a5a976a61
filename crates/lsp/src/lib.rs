//! `ad lsp`: a language server over stdio (lsp-server, synchronous): diagnostics as `ad
//! check` reports them, hover with shapes and signatures, completion, go to definition,
//! signature help and formatting.
//!
//! `server.rs` answers messages; this file moves them between stdio and the server.
//! `analysis.rs` answers syntax questions (what is at a position, where a name is bound),
//! `shapes.rs` the questions that need a session (checking, shapes), `signatures.rs` those
//! about builtins and the prelude, and `lines.rs` converts byte offsets to LSP positions.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod analysis;
pub mod lines;
pub mod server;
pub mod shapes;
pub mod signatures;

use lsp_server::Connection;
pub use server::{Flow, Server};

/// Serves one client over standard input and output until it sends `exit` or goes away.
/// Returns the exit status: 0 after `shutdown` then `exit`, 1 otherwise.
pub fn run_stdio() -> u8 {
    let (connection, io_threads) = Connection::stdio();
    let mut server = Server::new();
    let mut status = 1;
    let mut clean = false;
    'messages: for msg in &connection.receiver {
        let (replies, flow) = server.handle(msg);
        for r in replies {
            if connection.sender.send(r).is_err() {
                break 'messages;
            }
        }
        if let Flow::Exit(code) = flow {
            status = code;
            clean = true;
            break;
        }
    }
    // The writer thread ends when the last sender is gone; without this the join below
    // waits forever (and the server outlives its client).
    drop(connection);
    // After `exit` the reader has stopped; otherwise it may be blocked on a client that
    // neither writes nor closes, so do not wait for it.
    if clean {
        let _ = io_threads.join();
    }
    status
}
