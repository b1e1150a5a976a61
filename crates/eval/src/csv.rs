//! Numeric CSV files. A first row that does not parse as numbers is a header and skipped.
//! One column reads as a vector, several as a matrix (rows are lines).

use ad_ir::display::program_literal;
use ad_ir::{Array, Shape};

pub fn parse(text: &str) -> Result<Array, String> {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Result<Vec<f64>, _> = line.split(',').map(|f| f.trim().parse::<f64>()).collect();
        match fields {
            Ok(r) => {
                if let Some(first) = rows.first() {
                    if first.len() != r.len() {
                        return Err(format!(
                            "line {} has {} fields but earlier lines have {}",
                            lineno + 1,
                            r.len(),
                            first.len()
                        ));
                    }
                }
                rows.push(r);
            }
            Err(_) if rows.is_empty() && lineno == 0 => continue, // header
            Err(_) => {
                let bad = line.split(',').find(|f| f.trim().parse::<f64>().is_err()).unwrap_or("");
                return Err(format!("line {}: `{}` is not a number", lineno + 1, bad.trim()));
            }
        }
    }
    let Some(first) = rows.first() else {
        return Err("the file holds no numbers".into());
    };
    let (m, n) = (rows.len(), first.len());
    let shape = if n == 1 { Shape::vector(m) } else { Shape::matrix(m, n) };
    if Shape::checked_size(&[m, n]).is_none() {
        return Err("the file is too large".into());
    }
    Ok(Array::new(shape, rows.concat()))
}

pub fn format(a: &Array) -> String {
    let row = |xs: &[f64]| xs.iter().map(|x| program_literal(*x)).collect::<Vec<_>>().join(",");
    let mut s = String::new();
    match a.shape().dims() {
        [_, n] if *n > 0 => {
            for r in a.data().chunks(*n) {
                s.push_str(&row(r));
                s.push('\n');
            }
        }
        _ => {
            for x in a.data() {
                s.push_str(&program_literal(*x));
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header() {
        let a = parse("x,y\n1,2\n3,4.5\n").unwrap();
        assert_eq!(a.shape(), Shape::matrix(2, 2));
        assert_eq!(a.data(), &[1.0, 2.0, 3.0, 4.5]);
        let b = parse(&format(&a)).unwrap();
        assert_eq!(a, b);
        let v = parse("1\n2\nnan\n").unwrap();
        assert_eq!(v.shape(), Shape::vector(3));
        assert!(v.data()[2].is_nan());
        assert!(parse("1,2\n3\n").unwrap_err().contains("line 2"));
        assert!(parse("1,2\n3,x\n").unwrap_err().contains("`x`"));
        assert!(parse("").is_err());
    }
}
