//! The IR: a function specialised to argument shapes, as a flat list of SSA equations.
//!
//! Every equation binds one array variable of static shape to a primitive applied to
//! variables or literals, and keeps the source span it came from. Tuples and functions do
//! not exist at this level: lowering flattens them into the program's inputs and outputs,
//! and [`Tree`]s remember the structure for printing.

use crate::prim::Prim;
use crate::shape::Shape;
use ad_syntax::Span;
use std::rc::Rc;

pub type Name = Rc<str>;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Var(pub u32);

impl Var {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Atom {
    Var(Var),
    /// A scalar literal.
    Lit(f64),
}

impl PartialEq for Atom {
    fn eq(&self, o: &Atom) -> bool {
        match (self, o) {
            (Atom::Var(a), Atom::Var(b)) => a == b,
            (Atom::Lit(a), Atom::Lit(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}
impl Eq for Atom {}
impl std::hash::Hash for Atom {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            Atom::Var(v) => (0u8, v.0 as u64).hash(h),
            Atom::Lit(x) => (1u8, x.to_bits()).hash(h),
        }
    }
}

impl Atom {
    pub fn var(&self) -> Option<Var> {
        match self {
            Atom::Var(v) => Some(*v),
            Atom::Lit(_) => None,
        }
    }

    pub fn lit(&self) -> Option<f64> {
        match self {
            Atom::Lit(x) => Some(*x),
            Atom::Var(_) => None,
        }
    }
}

impl From<Var> for Atom {
    fn from(v: Var) -> Atom {
        Atom::Var(v)
    }
}

/// The operands of an equation: inline for up to three (almost every equation), so that
/// building and copying programs does not allocate per equation.
pub type Args = smallvec::SmallVec<[Atom; 3]>;

/// The operands `it` yields, as `Args`. Equations are built by the million while deriving,
/// and `SmallVec`'s general `collect` (which reserves, then checks its capacity before
/// every element) cost more than the rest of building one: up to three operands are
/// written straight into the inline buffer.
pub fn args_of(it: impl IntoIterator<Item = Atom>) -> Args {
    let mut it = it.into_iter();
    let mut buf = [Atom::Lit(0.0); 3];
    for (n, slot) in buf.iter_mut().enumerate() {
        match it.next() {
            Some(a) => *slot = a,
            None => return Args::from_buf_and_len(buf, n),
        }
    }
    let mut args = Args::from_buf(buf);
    args.extend(it);
    args
}

#[derive(Clone, Debug)]
pub struct Eqn {
    pub out: Var,
    pub prim: Prim,
    pub args: Args,
    pub span: Span,
    /// The results after the first, for structured operations with several (a loop's
    /// carried values); empty for every other primitive.
    pub extra: Box<[Var]>,
}

impl Eqn {
    /// Every result, the first one first.
    pub fn outs(&self) -> impl Iterator<Item = Var> + '_ {
        std::iter::once(self.out).chain(self.extra.iter().copied())
    }
}

#[derive(Clone, Debug)]
pub struct VarInfo {
    pub shape: Shape,
    /// The user's name for this value (from a `let`, a parameter, or a derived name such as
    /// `h_bar`), used by the printer.
    pub name: Option<Name>,
}

/// The structure of a parameter or result over the flat list of leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tree {
    Leaf,
    Tuple(Vec<Tree>),
    /// A function value (closure) whose captured arrays occupy this many leaves. It can be
    /// run but not printed as `.ad` parameters.
    Opaque(usize),
}

impl Tree {
    pub fn leaves(&self) -> usize {
        match self {
            Tree::Leaf => 1,
            Tree::Tuple(ts) => ts.iter().map(Tree::leaves).sum(),
            Tree::Opaque(n) => *n,
        }
    }

    /// Whether some part of the value is a function (which cannot be differentiated or
    /// printed as a program's value).
    pub fn holds_function(&self) -> bool {
        match self {
            Tree::Opaque(_) => true,
            Tree::Tuple(ts) => ts.iter().any(Tree::holds_function),
            Tree::Leaf => false,
        }
    }
}

/// A parameter of the program: a name and the structure of its value. Parameters occupy the
/// program's inputs in order.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: Name,
    pub tree: Tree,
}

/// A top-level name the program reads (a constant to it). Captures occupy the inputs after
/// all parameters; the caller supplies their current values by name, as `scope` sees it.
#[derive(Clone, Debug)]
pub struct Capture {
    pub name: Name,
    pub tree: Tree,
    /// The scope the name was read in (the same name can mean different things in
    /// different files).
    pub scope: ScopeId,
}

/// A set of top-level names, as the host numbers them: each imported file has its own; the
/// main script, the REPL's entries and texts AD reads back share one. What a file's scope
/// holds is up to the host (`lower::Host`); lowering only keeps the number with each name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ScopeId(pub u32);

#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub vars: Vec<VarInfo>,
    /// Parameter leaves, then capture leaves.
    pub inputs: Vec<Var>,
    pub params: Vec<ParamDecl>,
    pub captures: Vec<Capture>,
    pub eqns: Vec<Eqn>,
    pub outputs: Vec<Atom>,
    pub out_tree: Tree,
    /// Where the function was defined, for errors found later.
    pub span: Span,
}

impl Program {
    /// A program with `p`'s name, parameters, captures, result structure and span around
    /// new variables, inputs, equations and outputs: what a pass that rewrites `p`
    /// equation by equation returns.
    pub fn rebuilt(
        &self,
        vars: Vec<VarInfo>,
        inputs: Vec<Var>,
        eqns: Vec<Eqn>,
        outputs: Vec<Atom>,
    ) -> Program {
        Program {
            name: self.name.clone(),
            vars,
            inputs,
            params: self.params.clone(),
            captures: self.captures.clone(),
            eqns,
            outputs,
            out_tree: self.out_tree.clone(),
            span: self.span,
        }
    }

    pub fn shape(&self, a: Atom) -> Shape {
        match a {
            Atom::Var(v) => self.vars[v.index()].shape,
            Atom::Lit(_) => Shape::scalar(),
        }
    }

    pub fn var_shape(&self, v: Var) -> Shape {
        self.vars[v.index()].shape
    }

    pub fn name_of(&self, v: Var) -> Option<&str> {
        self.vars[v.index()].name.as_deref()
    }

    /// The input leaves of each parameter, in order (parameters come first among the
    /// inputs; captures follow).
    pub fn param_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = 0;
        self.params
            .iter()
            .map(|d| {
                let r = start..start + d.tree.leaves();
                start = r.end;
                r
            })
            .collect()
    }

    /// The number of inputs that belong to parameters (the rest are captures).
    pub fn param_leaves(&self) -> usize {
        self.params.iter().map(|p| p.tree.leaves()).sum()
    }
}

#[cfg(test)]
mod tests {
    /// Derivation holds every equation and variable of programs of hundreds of thousands of
    /// equations, and the interpreter moves arrays per equation: their sizes are part of
    /// what both cost. (An inline `[usize; 8]` shape made them 200, 88 and 80 bytes.)
    #[test]
    fn equations_variables_and_arrays_stay_small() {
        use std::mem::size_of;
        assert!(size_of::<super::Eqn>() <= 120, "Eqn is {} bytes", size_of::<super::Eqn>());
        assert!(size_of::<crate::Prim>() <= 32, "Prim is {} bytes", size_of::<crate::Prim>());
        assert!(size_of::<super::VarInfo>() <= 32, "VarInfo is {} bytes", size_of::<super::VarInfo>());
        assert!(size_of::<crate::Array>() <= 24, "Array is {} bytes", size_of::<crate::Array>());
    }

    #[test]
    fn operands_are_collected_in_order_inline_or_not() {
        use super::{args_of, Atom, Var};
        for n in 0..6 {
            let atoms: Vec<Atom> =
                (0..n).map(|i| if i % 2 == 0 { Atom::Var(Var(i)) } else { Atom::Lit(i as f64) }).collect();
            let args = args_of(atoms.iter().copied());
            assert_eq!(args.as_slice(), atoms.as_slice(), "{n} operands");
            assert_eq!(args.spilled(), n > 3, "{n} operands");
        }
    }
}
