//! Wording shared by messages: counts with the right plural, so that no message says
//! "1 elements" or "argument(s)".

/// `n` followed by the noun, singular for 1: `count(1, "argument")` is "1 argument",
/// `count(3, "argument")` is "3 arguments"; nouns with an irregular plural pass it.
pub fn count(n: usize, noun: &str) -> String {
    count_irregular(n, noun, &format!("{noun}s"))
}

/// As [`count`], with the plural given: `count_irregular(2, "index", "indices")`.
pub fn count_irregular(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// "was" or "were" for a count of `n`.
pub fn was(n: usize) -> &'static str {
    if n == 1 {
        "was"
    } else {
        "were"
    }
}

/// The message for a call with the wrong number of arguments: "`f` takes 2 arguments but
/// 1 was given".
pub fn arity(what: &str, expected: &str, given: usize) -> String {
    format!("{what} takes {expected} but {given} {} given", was(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(count(1, "argument"), "1 argument");
        assert_eq!(count(0, "element"), "0 elements");
        assert_eq!(count_irregular(2, "index", "indices"), "2 indices");
        assert_eq!(arity("`f`", &count(2, "argument"), 1), "`f` takes 2 arguments but 1 was given");
        assert_eq!(arity("`f`", &count(1, "argument"), 3), "`f` takes 1 argument but 3 were given");
    }
}
