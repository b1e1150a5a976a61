//! Concrete array values: a row-major `f64` buffer and a shape.
//!
//! The IR holds arrays as literals and the interpreter (`ad-eval`) computes on them. The
//! buffer is reference counted, so passing an array never copies it, and a kernel whose
//! input is uniquely owned may write in place (`Rc::get_mut`).

use crate::shape::Shape;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct Array {
    shape: Shape,
    data: Rc<Vec<f64>>,
}

impl Array {
    /// An array from a buffer; the caller guarantees `data.len() == shape.size()`.
    #[inline]
    pub fn new(shape: Shape, data: Vec<f64>) -> Array {
        debug_assert_eq!(data.len(), shape.size(), "buffer length must match the shape");
        Array { shape, data: Rc::new(data) }
    }

    #[inline]
    pub fn from_rc(shape: Shape, data: Rc<Vec<f64>>) -> Array {
        debug_assert_eq!(data.len(), shape.size(), "buffer length must match the shape");
        Array { shape, data }
    }

    #[inline]
    pub fn scalar(x: f64) -> Array {
        Array::new(Shape::scalar(), vec![x])
    }

    #[inline]
    pub fn full(shape: Shape, x: f64) -> Array {
        Array::new(shape, vec![x; shape.size()])
    }

    #[inline]
    pub fn shape(&self) -> Shape {
        self.shape
    }

    #[inline]
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    #[inline]
    pub fn rc(&self) -> &Rc<Vec<f64>> {
        &self.data
    }

    /// The buffer, if no one else holds it: lets kernels reuse dying inputs.
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut Vec<f64>> {
        Rc::get_mut(&mut self.data)
    }

    #[inline]
    pub fn into_parts(self) -> (Shape, Rc<Vec<f64>>) {
        (self.shape, self.data)
    }

    /// The value of a rank-0 (or single-element) array.
    #[inline]
    pub fn as_scalar(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }

    /// The same data viewed with another shape of equal size.
    #[inline]
    pub fn reshaped(&self, shape: Shape) -> Array {
        debug_assert_eq!(shape.size(), self.shape.size());
        Array { shape, data: self.data.clone() }
    }

    /// [`reshaped`](Array::reshaped), keeping the buffer's ownership: a kernel given the only
    /// reference can still write in place.
    #[inline]
    pub fn into_reshaped(self, shape: Shape) -> Array {
        debug_assert_eq!(shape.size(), self.shape.size());
        Array { shape, data: self.data }
    }

    /// True when both arrays share one buffer (identity, used by caches).
    #[inline]
    pub fn same_buffer(&self, other: &Array) -> bool {
        Rc::ptr_eq(&self.data, &other.data)
    }

    /// Element `(i, j)` of the array viewed as a matrix (see [`Shape::as_matrix`]).
    pub fn at2(&self, i: usize, j: usize) -> f64 {
        let (_, n) = self.shape.as_matrix();
        self.data[i * n + j]
    }
}

impl PartialEq for Array {
    fn eq(&self, other: &Array) -> bool {
        self.shape == other.shape && (Rc::ptr_eq(&self.data, &other.data) || self.data == other.data)
    }
}
