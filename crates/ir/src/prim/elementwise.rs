//! The elementwise primitives, each declared once: its name, whether scripts can call it by
//! that name, its class for differentiation and its scalar meaning. The declaration makes
//! the enum, the list of all operations (`ALL`), the name table and the scalar semantics
//! together, so they cannot disagree; kernels and constant folding both evaluate through
//! `eval`, so a number means the same thing wherever it is computed.

use super::Class;
use crate::scalar::{exp, logaddexp, max, min, pow, relu, remainder, safe_mul, sigmoid, sign, tanh, truth};

/// Declares an enum of elementwise operations from a table with one row per operation:
/// `Variant "name" callable class => value`, where `value` computes the result from the
/// operands named in the header.
macro_rules! declare_ops {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident ($($x:ident),+) {
            $( $(#[$doc:meta])* $Variant:ident $name:literal $callable:literal $class:expr => $eval:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $Enum {
            $( $(#[$doc])* $Variant, )*
        }

        impl $Enum {
            /// Every operation, in declaration order.
            pub const ALL: &'static [$Enum] = &[$($Enum::$Variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($Enum::$Variant => $name,)*
                }
            }

            /// Whether scripts can call it by name (`not`, `and` and `or` are written as the
            /// operators `!`, `&&` and `||`).
            pub fn callable(self) -> bool {
                match self {
                    $($Enum::$Variant => $callable,)*
                }
            }

            /// How the result depends on the operands, for differentiation.
            pub fn class(self) -> Class {
                match self {
                    $($Enum::$Variant => $class,)*
                }
            }

            /// The operation on numbers.
            #[inline(always)]
            pub fn eval(self, $($x: f64),+) -> f64 {
                match self {
                    $($Enum::$Variant => $eval,)*
                }
            }
        }
    };
}

declare_ops! {
    /// Elementwise operations of one operand.
    pub enum Unary(x) {
        Neg "neg" true Class::Linear => -x;
        Exp "exp" true Class::Nonlinear => exp(x);
        Log "log" true Class::Nonlinear => x.ln();
        Sin "sin" true Class::Nonlinear => x.sin();
        Cos "cos" true Class::Nonlinear => x.cos();
        Tanh "tanh" true Class::Nonlinear => tanh(x);
        Sqrt "sqrt" true Class::Nonlinear => x.sqrt();
        Abs "abs" true Class::Nonlinear => x.abs();
        Sigmoid "sigmoid" true Class::Nonlinear => sigmoid(x);
        Relu "relu" true Class::Nonlinear => relu(x);
        Sign "sign" true Class::Zero => sign(x);
        Tan "tan" true Class::Nonlinear => libm::tan(x);
        Asin "asin" true Class::Nonlinear => libm::asin(x);
        Acos "acos" true Class::Nonlinear => libm::acos(x);
        Atan "atan" true Class::Nonlinear => libm::atan(x);
        Sinh "sinh" true Class::Nonlinear => libm::sinh(x);
        Cosh "cosh" true Class::Nonlinear => libm::cosh(x);
        Asinh "asinh" true Class::Nonlinear => libm::asinh(x);
        Acosh "acosh" true Class::Nonlinear => libm::acosh(x);
        Atanh "atanh" true Class::Nonlinear => libm::atanh(x);
        /// `log(1 + x)`, accurate for small `x`.
        Log1p "log1p" true Class::Nonlinear => libm::log1p(x);
        /// `exp(x) - 1`, accurate for small `x`.
        Expm1 "expm1" true Class::Nonlinear => libm::expm1(x);
        Log2 "log2" true Class::Nonlinear => libm::log2(x);
        Log10 "log10" true Class::Nonlinear => libm::log10(x);
        Exp2 "exp2" true Class::Nonlinear => libm::exp2(x);
        Erf "erf" true Class::Nonlinear => libm::erf(x);
        Erfc "erfc" true Class::Nonlinear => libm::erfc(x);
        Cbrt "cbrt" true Class::Nonlinear => libm::cbrt(x);
        Floor "floor" true Class::Zero => x.floor();
        Ceil "ceil" true Class::Zero => x.ceil();
        /// Halves to even, as NumPy's `round`.
        Round "round" true Class::Zero => x.round_ties_even();
        Trunc "trunc" true Class::Zero => x.trunc();
        /// `!x`: 1 where x is 0, else 0.
        Not "not" false Class::Zero => truth(x == 0.0);
    }
}

declare_ops! {
    /// Elementwise operations of two operands, which broadcast against each other.
    pub enum Binary(x, y) {
        Add "add" true Class::Linear => x + y;
        Sub "sub" true Class::Linear => x - y;
        Mul "mul" true Class::Bilinear => x * y;
        Div "div" true Class::LinearIn(&[0]) => x / y;
        Pow "pow" true Class::Nonlinear => pow(x, y);
        Max "max" true Class::Nonlinear => max(x, y);
        Min "min" true Class::Nonlinear => min(x, y);
        /// `atan2(y, x)`: the angle of the point (x, y), in (-π, π], as NumPy's `arctan2`.
        Atan2 "atan2" true Class::Nonlinear => x.atan2(y);
        /// `sqrt(x² + y²)` without overflow or underflow on the way.
        Hypot "hypot" true Class::Nonlinear => libm::hypot(x, y);
        /// The remainder with the divisor's sign, as NumPy's `mod`: `x - floor(x / y) * y`.
        Mod "mod" true Class::Nonlinear => remainder(x, y);
        /// `log(exp(x) + exp(y))` without overflow.
        Logaddexp "logaddexp" true Class::Nonlinear => logaddexp(x, y);
        Lt "lt" true Class::Zero => truth(x < y);
        Le "le" true Class::Zero => truth(x <= y);
        Gt "gt" true Class::Zero => truth(x > y);
        Ge "ge" true Class::Zero => truth(x >= y);
        Eq "eq" true Class::Zero => truth(x == y);
        Ne "ne" true Class::Zero => truth(x != y);
        And "and" false Class::Zero => truth(x != 0.0 && y != 0.0);
        Or "or" false Class::Zero => truth(x != 0.0 || y != 0.0);
        /// `safe_mul(a, b)`: `a * b`, but exactly 0 where either factor is 0, even if the
        /// other is infinite or NaN (a "strong zero"). Derivatives use it so that a branch
        /// `where` did not select contributes exactly zero, at every order and in every mode.
        SafeMul "safe_mul" true Class::Bilinear => safe_mul(x, y);
    }
}

impl Binary {
    /// Comparisons and logical operators: results are 0/1 and carry no derivative.
    pub fn is_predicate(self) -> bool {
        self.class() == Class::Zero
    }
}
