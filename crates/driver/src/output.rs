//! An output stream to read back: sessions in tests, the REPL and the golden runner print
//! into one and take what was printed.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// A `Write` that appends to a shared buffer, so tests can read what a session printed.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Rc<RefCell<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.borrow_mut())).into_owned()
    }
}
