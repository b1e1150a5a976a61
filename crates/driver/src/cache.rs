//! Specialisations: a function value and argument structures map to lowered, compiled
//! programs. An entry is reused while the top-level names it read keep their structure and
//! the scalar inputs it treated as constants keep their values.

use ad_eval::Compiled;
use ad_ir::lower::spec::Spec;
use ad_ir::lower::Lowered;
use std::collections::HashMap;
use std::rc::Rc;

pub struct Entry {
    pub lowered: Lowered,
    pub compiled: Compiled,
}

#[derive(Default)]
pub struct Cache {
    pub(crate) map: HashMap<(Spec, Vec<Spec>), Vec<Rc<Entry>>>,
    /// How many times a function was lowered (tests assert that loops do not re-lower).
    pub lowerings: usize,
}
