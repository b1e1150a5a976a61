//! `einsum(subscripts, x, y, ...)` with NumPy's subscripts (`"bij,bjk->bik"`; without
//! `->` the output is the letters used once, in alphabetical order).
//!
//! It lowers to primitives that already have every rule: a letter repeated within one
//! operand takes a diagonal (a product with an identity mask, then a sum), letters that
//! appear nowhere else are summed away first, and operands are contracted left to right,
//! each contraction one batched matrix product between permuted and reshaped operands (so
//! the work is done by faer, never by a loop of scalars).

use super::value::LVal;
use super::{Lowerer, Result};
use crate::prim::{Axes, Binary, Prim};
use ad_syntax::{Diagnostic, Span};

/// An operand while contracting: its value and the letter of each axis.
struct Term {
    value: LVal,
    letters: Vec<char>,
}

/// The subscripts: one letter list per operand, and the output's letters.
fn parse(spec: &str, operands: usize) -> std::result::Result<(Vec<Vec<char>>, Vec<char>), String> {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let (inputs, output) = match spec.split_once("->") {
        Some((i, o)) => (i.to_string(), Some(o.to_string())),
        None => (spec.clone(), None),
    };
    let terms: Vec<Vec<char>> = inputs.split(',').map(|t| t.chars().collect()).collect();
    for c in terms.iter().flatten().chain(output.iter().flat_map(|o| o.chars()).collect::<Vec<_>>().iter()) {
        if !c.is_ascii_alphabetic() {
            return Err(format!("einsum subscripts are letters, found `{c}`"));
        }
    }
    if terms.len() != operands {
        return Err(format!(
            "the subscripts `{spec}` name {} but {} {} given",
            crate::words::count(terms.len(), "operand"),
            operands,
            crate::words::was(operands)
        ));
    }
    let output: Vec<char> = match output {
        Some(o) => o.chars().collect(),
        None => {
            let mut once: Vec<char> = terms
                .iter()
                .flatten()
                .copied()
                .filter(|c| terms.iter().flatten().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    for (i, c) in output.iter().enumerate() {
        if output[..i].contains(c) {
            return Err(format!("the output subscript `{c}` appears twice"));
        }
        if !terms.iter().flatten().any(|d| d == c) {
            return Err(format!("the output subscript `{c}` is not in any operand"));
        }
    }
    Ok((terms, output))
}

impl Lowerer<'_> {
    pub(crate) fn einsum(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        let Some(LVal::Str(spec)) = args.first() else {
            return Err(Diagnostic::at(
                span,
                "`einsum` takes the subscripts as its first argument, as in `einsum(\"ij,jk->ik\", a, b)`",
            ));
        };
        let operands = &args[1..];
        if operands.is_empty() {
            return Err(Diagnostic::at(span, "`einsum` needs at least one operand"));
        }
        let (subs, output) = parse(spec, operands.len()).map_err(|m| Diagnostic::at(spans[0], m))?;
        // Each letter has one size across the operands.
        let mut sizes: Vec<(char, usize, usize)> = Vec::new();
        for (k, (x, letters)) in operands.iter().zip(&subs).enumerate() {
            let at = spans.get(k + 1).copied().unwrap_or(span);
            let s = self.array_shape("einsum", x, at)?;
            if s.rank() != letters.len() {
                return Err(Diagnostic::at(
                    at,
                    format!(
                        "the subscripts `{}` need an array of rank {}, found shape {s}",
                        letters.iter().collect::<String>(),
                        letters.len()
                    ),
                ));
            }
            for (c, d) in letters.iter().zip(s.dims()) {
                match sizes.iter().find(|(l, _, _)| l == c) {
                    Some((_, size, first)) if size != d => {
                        return Err(Diagnostic::at(
                            at,
                            format!(
                                "subscript `{c}` has size {size} in operand {} but {d} here (shape {s})",
                                first + 1
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => sizes.push((*c, *d, k)),
                }
            }
        }
        let mut terms = Vec::with_capacity(operands.len());
        for (x, letters) in operands.iter().zip(subs) {
            terms.push(self.diagonals(Term { value: x.clone(), letters }, span)?);
        }
        let mut acc: Option<Term> = None;
        for k in 0..terms.len() {
            // Letters still needed once this operand is contracted: the output's and those
            // of the operands after it.
            let mut keep: Vec<char> = output.clone();
            keep.extend(terms[k + 1..].iter().flat_map(|t| t.letters.iter().copied()));
            let current = Term { value: terms[k].value.clone(), letters: terms[k].letters.clone() };
            let mut needed = keep.clone();
            if let Some(a) = &acc {
                needed.extend(a.letters.iter().copied());
            }
            let current = self.sum_unneeded(current, &needed, span)?;
            acc = Some(match acc.take() {
                None => current,
                Some(a) => {
                    let mut needed = keep.clone();
                    needed.extend(current.letters.iter().copied());
                    let a = self.sum_unneeded(a, &needed, span)?;
                    self.contract(a, current, &keep, &sizes, span)?
                }
            });
        }
        let Some(result) = acc else {
            return Err(Diagnostic::at(span, "`einsum` needs at least one operand"));
        };
        let result = self.sum_unneeded(result, &output, span)?;
        let perm: Vec<usize> =
            output.iter().filter_map(|c| result.letters.iter().position(|d| d == c)).collect();
        self.permute(&result.value, perm, span)
    }

    /// The term with each letter repeated within it reduced to one axis (the diagonal).
    fn diagonals(&mut self, mut t: Term, span: Span) -> Result<Term> {
        while let Some((i, j)) = repeated(&t.letters) {
            let s = self.array_shape("einsum", &t.value, span)?;
            let n = s.dim(i);
            // The identity, with its two axes at positions `i` and `j`, masks the diagonal.
            let eye = self.prim(Prim::Eye(n), &[], span)?;
            let dims: Vec<usize> = (0..s.rank()).map(|k| if k == i || k == j { n } else { 1 }).collect();
            let mask = self.reshape_to(&eye, &dims, span)?;
            let masked = self.prim(Prim::Binary(Binary::Mul), &[t.value, mask], span)?;
            t.value = self.prim(Prim::Sum(Axes::one(j)), &[masked], span)?;
            t.letters.remove(j);
        }
        Ok(t)
    }

    /// The term with the axes of letters outside `needed` summed away.
    fn sum_unneeded(&mut self, t: Term, needed: &[char], span: Span) -> Result<Term> {
        let gone: Vec<usize> = (0..t.letters.len()).filter(|k| !needed.contains(&t.letters[*k])).collect();
        if gone.is_empty() {
            return Ok(t);
        }
        let value = self.prim(Prim::Sum(Axes::of(&gone)), &[t.value], span)?;
        let letters =
            t.letters.iter().enumerate().filter(|(k, _)| !gone.contains(k)).map(|(_, c)| *c).collect();
        Ok(Term { value, letters })
    }

    /// `a` and `b` contracted over their shared letters outside `keep`, as one batched
    /// product: `a` as `[batch, free_a, contracted]`, `b` as `[batch, contracted, free_b]`.
    fn contract(
        &mut self,
        a: Term,
        b: Term,
        keep: &[char],
        sizes: &[(char, usize, usize)],
        span: Span,
    ) -> Result<Term> {
        let size = |c: &char| sizes.iter().find(|(l, _, _)| l == c).map_or(1, |(_, s, _)| *s);
        let shared: Vec<char> = a.letters.iter().copied().filter(|c| b.letters.contains(c)).collect();
        let batch: Vec<char> = shared.iter().copied().filter(|c| keep.contains(c)).collect();
        let summed: Vec<char> = shared.iter().copied().filter(|c| !keep.contains(c)).collect();
        let free_a: Vec<char> = a.letters.iter().copied().filter(|c| !shared.contains(c)).collect();
        let free_b: Vec<char> = b.letters.iter().copied().filter(|c| !shared.contains(c)).collect();
        let product = |cs: &[char]| cs.iter().map(size).product::<usize>();
        let (nb, nfa, nc, nfb) = (product(&batch), product(&free_a), product(&summed), product(&free_b));
        let order = |t: &Term, groups: [&[char]; 3]| -> Vec<usize> {
            groups
                .iter()
                .flat_map(|g| g.iter())
                .filter_map(|c| t.letters.iter().position(|d| d == c))
                .collect()
        };
        let pa = order(&a, [&batch, &free_a, &summed]);
        let pb = order(&b, [&batch, &summed, &free_b]);
        let av = self.permute(&a.value, pa, span)?;
        let bv = self.permute(&b.value, pb, span)?;
        let av = self.reshape_to(&av, &[nb, nfa, nc], span)?;
        let bv = self.reshape_to(&bv, &[nb, nc, nfb], span)?;
        let product = self.prim(Prim::MatMul, &[av, bv], span)?;
        let letters: Vec<char> = batch.iter().chain(&free_a).chain(&free_b).copied().collect();
        let dims: Vec<usize> = letters.iter().map(size).collect();
        let value = self.reshape_to(&product, &dims, span)?;
        Ok(Term { value, letters })
    }
}

/// The first pair of positions holding the same letter.
fn repeated(letters: &[char]) -> Option<(usize, usize)> {
    (0..letters.len())
        .find_map(|i| letters[i + 1..].iter().position(|c| *c == letters[i]).map(|j| (i, i + 1 + j)))
}
