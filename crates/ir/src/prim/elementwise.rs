//! The elementwise primitives, each declared once: its name, whether scripts can call it by
//! that name, its class for differentiation and its scalar meaning. The declaration makes
//! the enum, the list of all operations (`ALL`), the name table and the scalar semantics
//! together, so they cannot disagree; kernels and constant folding both evaluate through
//! `eval`, so a number means the same thing wherever it is computed.

use super::Class;
use crate::scalar::{exp, max, min, pow, relu, safe_mul, sigmoid, sign, tanh, truth};

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
