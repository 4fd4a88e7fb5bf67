//! Lifetimes on the command line: `90s`, `15m`, `1h`, `60d` or plain seconds (INTERFACE).

/// Parses a duration into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected e.g. 90s, 15m, 1h, 60d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("invalid duration unit in `{s}`: use s, m, h or d")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("duration `{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn parses_units_and_plain_seconds() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("60d"), Ok(5_184_000));
        assert_eq!(parse_duration("42"), Ok(42));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-5s").is_err());
    }
}
