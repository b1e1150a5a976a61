//! The memory budget: how large one array may be. Sizes computed from user input (literals,
//! `zeros`, broadcasting, products, derived Jacobians and Hessians) are checked against it
//! while lowering, so an absurd size is a located error rather than an aborted allocation.
//!
//! By default the budget is the machine's memory, or half the process's address-space limit
//! when one is set (`ulimit -v`), whichever is smaller; `--ad-memory SIZE` replaces it.

/// Parses a size in bytes with an optional unit: `1000000`, `512MiB`, `2 GiB`, `64KiB`, `1GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size (e.g. 512MiB, 2GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use B, KiB, MiB, GiB or TiB)")),
    };
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("`{text}` is not a usable memory size"));
    }
    Ok(bytes as u64)
}

/// The default budget: the machine's memory, capped by half the address-space limit (the
/// other half is room for everything else a process maps). `None` when neither can be read
/// (then the built-in limit of 2^31 elements stays).
pub fn machine_budget() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let address_space = address_space_limit().map(|b| b / 2);
    match (total, address_space) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The process's address-space limit (`ulimit -v`), if one is set.
pub fn address_space_limit() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = t.lines().find(|l| l.starts_with("Max address space"))?;
    // "Max address space  <soft> <hard> bytes": the soft limit is the one enforced, and it
    // reads "unlimited" when there is none.
    line.split_whitespace().nth(3)?.parse::<u64>().ok()
}

/// Sets the budget: `SIZE` when given, otherwise the machine's.
pub fn configure(size: Option<u64>) {
    // A size given is also the budget of reverse mode through loops (whose default is
    // 512 MiB, not the machine's).
    if let Some(bytes) = size {
        ad_ir::shape::set_tape_budget(bytes);
    }
    if let Some(bytes) = size.or_else(machine_budget) {
        ad_ir::shape::set_memory_budget(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }
}
