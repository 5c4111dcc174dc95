//! Durations on the command line: human (`2s`, `1m30s`, `500ms`) or ISO-8601 (`PT2S`).

use std::time::Duration;

/// A clap value parser for the listener's `--delay` and `--complete-after`.
pub fn parse(text: &str) -> Result<Duration, String> {
    if let Some(iso) = text.strip_prefix("PT") {
        return iso_seconds(iso)
            .ok_or_else(|| format!("`{text}` is not an ISO-8601 duration like PT2S"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}`: {e} (write e.g. 2s, 500ms, 1m30s or PT2S)"))
}

/// The API's duration form (`PT<seconds>S`) of `invoke --delay`; ISO-8601 text passes through
/// for the server to check.
pub fn to_iso(text: &str) -> Result<String, String> {
    if text.starts_with('P') {
        return Ok(text.to_owned());
    }
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}`: {e} (write e.g. 10m or PT10M)"))?;
    // Whole days apart: ISO-8601's numbers are read within u32, and a long wait or delay in
    // seconds alone would be refused as no duration at all instead of as too long.
    let seconds = duration.as_secs();
    Ok(match (seconds / 86_400, seconds % 86_400) {
        (0, _) => format!("PT{seconds}S"),
        (days, 0) => format!("P{days}D"),
        (days, rest) => format!("P{days}DT{rest}S"),
    })
}

/// `2S`, `1M30S`, `1H`, `0.5S` (the part after `PT`).
fn iso_seconds(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                total += value
                    * match c {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
            }
            _ => return None,
        }
    }
    // `try_`: a number past what a Duration holds is refused, not a panic.
    (number.is_empty() && !text.is_empty())
        .then(|| Duration::try_from_secs_f64(total).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_and_iso_forms_parse_to_the_same_duration() {
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("PT2S").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("PT1M30S").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("PT0.5S").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn nonsense_is_refused_with_an_example() {
        assert!(parse("soon").unwrap_err().contains("2s"));
        assert!(parse("PT2").is_err());
        assert!(parse("PT").is_err());
        // Past what a Duration holds: refused (it panicked).
        assert!(parse("PT99999999999999999999S").is_err());
        assert!(parse("PT99999999999999999999H").is_err());
    }

    #[test]
    fn invoke_delays_become_iso_seconds() {
        assert_eq!(to_iso("10m").unwrap(), "PT600S");
        assert_eq!(to_iso("2d").unwrap(), "P2D");
        assert_eq!(to_iso("1d 1s").unwrap(), "P1DT1S");
        assert_eq!(to_iso("99999999d").unwrap(), "P99999999D");
        assert_eq!(to_iso("PT10M").unwrap(), "PT10M");
        assert!(to_iso("later").is_err());
    }
}
