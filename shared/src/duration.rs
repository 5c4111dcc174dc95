//! ISO-8601 durations (`PT1H`, `P2D`), as `responseDeadline` and `delay` carry them.

use std::fmt;
use std::sync::LazyLock;

use crate::Error;
use crate::time::MAX_AHEAD_DAYS;

/// [`MAX_AHEAD_DAYS`] in milliseconds (the constant fits `u64` many times over).
const MAX_AHEAD_MILLIS: u64 = MAX_AHEAD_DAYS.unsigned_abs() * 86_400_000;

/// A validated, positive ISO-8601 duration. Keeps the caller's spelling, so that `PT60M` is
/// answered back as `PT60M`, and the exact length in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoDuration {
    text: String,
    millis: u64,
}

impl IsoDuration {
    /// Parses `text`; `field` names the request field in the error.
    ///
    /// Years and months have no fixed length, so they are refused rather than guessed.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        let not_a_duration = || {
            Error::invalid(
                field,
                format!("`{text}` is not an ISO-8601 duration (e.g. PT1H, PT30M, P1D)"),
            )
        };
        if !well_formed(text) {
            if grammatical(text) {
                // Written right, but with a number past `u32`: say which rule it broke.
                return Err(Error::invalid(
                    field,
                    format!("`{text}` has a number larger than {}", u32::MAX),
                ));
            }
            return Err(not_a_duration());
        }
        let parsed = iso8601::duration(text).map_err(|_| not_a_duration())?;
        let millis = match parsed {
            iso8601::Duration::Weeks(w) => u64::from(w) * 7 * 86_400_000,
            iso8601::Duration::YMDHMS {
                year,
                month,
                day,
                hour,
                minute,
                second,
                millisecond,
            } => {
                if year != 0 || month != 0 {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "`{text}` uses years or months; use days, hours, minutes or seconds"
                        ),
                    ));
                }
                ((u64::from(day) * 24 + u64::from(hour)) * 60 + u64::from(minute)) * 60_000
                    + u64::from(second) * 1000
                    + u64::from(millisecond)
            }
        };
        if millis == 0 {
            return Err(Error::invalid(
                field,
                "the duration must be longer than zero",
            ));
        }
        Ok(IsoDuration {
            text: text.to_owned(),
            millis,
        })
    }

    /// As [`IsoDuration::parse`], and at most [`MAX_AHEAD_DAYS`] long: the bound of every
    /// duration a request schedules with (`delay`, `responseDeadline`).
    pub fn parse_bounded(field: &str, text: &str) -> Result<Self, Error> {
        let duration = Self::parse(field, text)?;
        if duration.millis > MAX_AHEAD_MILLIS {
            return Err(Error::invalid(
                field,
                format!("`{text}` is longer than the most allowed, P{MAX_AHEAD_DAYS}D"),
            ));
        }
        Ok(duration)
    }

    /// As [`IsoDuration::parse`], but zero (`PT0S`, `P0D`) is a length too: for periods where
    /// "none" means something (a rotation's grace period). Its length in milliseconds.
    pub fn parse_millis_or_zero(field: &str, text: &str) -> Result<u64, Error> {
        match Self::parse(field, text) {
            Ok(duration) => Ok(duration.millis),
            // Only a well-formed text can be a zero (`PT0S`, `P0D`; not `P`, `PT` or `PT0`).
            Err(e) if !well_formed(text) => Err(e),
            Err(e) => match iso8601::duration(text) {
                Ok(iso8601::Duration::Weeks(0))
                | Ok(iso8601::Duration::YMDHMS {
                    year: 0,
                    month: 0,
                    day: 0,
                    hour: 0,
                    minute: 0,
                    second: 0,
                    millisecond: 0,
                }) => Ok(0),
                _ => Err(e),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn as_chrono(&self) -> chrono::Duration {
        i64::try_from(self.millis)
            .ok()
            .and_then(chrono::Duration::try_milliseconds)
            .unwrap_or(chrono::Duration::MAX)
    }

    pub fn as_millis(&self) -> u64 {
        self.millis
    }
}

impl serde::Serialize for IsoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for IsoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        IsoDuration::parse("duration", &text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `text` is, whole, an ISO-8601 duration of the kinds this reads: weeks alone, or
/// years, months and days and a time part (`T` then hours, minutes and seconds, seconds with an
/// optional fraction), in that order, at least one of them, each number within `u32`. (Years
/// and months are read here only to be refused by name.) `iso8601` alone stops at the first
/// thing it cannot read and keeps what it read (`PT5Sxyz` was 5 s, `PT1H5` an hour), and takes
/// a number past `u32` for an absent part: `PT4294967296S`, 136 years, was zero, which a
/// `delay` took for "now".
fn well_formed(text: &str) -> bool {
    grammatical(text)
        && text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|digits| !digits.is_empty())
            .all(|digits| digits.parse::<u32>().is_ok())
}

/// [`well_formed`]'s grammar, whatever the size of the numbers.
fn grammatical(text: &str) -> bool {
    static GRAMMAR: LazyLock<regex_lite::Regex> = LazyLock::new(|| {
        regex_lite::Regex::new(
            r"^P(?:\d+W|(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:[.,]\d+)?S)?)?)$",
        )
        .expect("the pattern is valid")
    });
    text != "P" && !text.ends_with('T') && GRAMMAR.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_deadlines() {
        assert_eq!(
            IsoDuration::parse("d", "PT1H").unwrap().as_millis(),
            3_600_000
        );
        assert_eq!(
            IsoDuration::parse("d", "PT30M").unwrap().as_millis(),
            1_800_000
        );
        assert_eq!(
            IsoDuration::parse("d", "P1DT2H").unwrap().as_millis(),
            93_600_000
        );
        assert_eq!(
            IsoDuration::parse("d", "P1W").unwrap().as_millis(),
            604_800_000
        );
        assert_eq!(IsoDuration::parse("d", "PT60M").unwrap().as_str(), "PT60M");
    }

    #[test]
    fn bounded_durations_stop_at_a_year() {
        assert_eq!(
            IsoDuration::parse_bounded("delay", "P365D")
                .unwrap()
                .as_millis(),
            365 * 86_400_000
        );
        for long in ["P366D", "PT8761H", "P96000000D", "P53W", "PT4294967295H"] {
            let err = IsoDuration::parse_bounded("delay", long).unwrap_err();
            assert!(err.to_string().starts_with("delay:"), "{long}: {err}");
            assert!(err.to_string().contains("P365D"), "{long}: {err}");
        }
    }

    /// What `iso8601` alone read wrongly: trailing text dropped, a part without its unit
    /// dropped, a number past `u32` read as an absent part (zero).
    #[test]
    fn the_whole_text_is_read_or_refused() {
        for (bad, said) in [
            ("PT5Sxyz", "is not an ISO-8601"),
            ("PT1H5", "is not an ISO-8601"),
            ("P1D2", "is not an ISO-8601"),
            ("P1DT", "is not an ISO-8601"),
            ("PT4294967296S", "has a number larger than 4294967295"),
            ("PT1H4294967296S", "has a number larger than 4294967295"),
            ("PT99999999999M", "has a number larger than 4294967295"),
            ("PT99999999999H", "has a number larger than 4294967295"),
            ("P4294967296D", "has a number larger than 4294967295"),
            ("PT1.99999999999S", "has a number larger than 4294967295"),
            ("P1WT1H", "is not an ISO-8601"),
            ("PT1.5M", "is not an ISO-8601"),
            ("pt1h", "is not an ISO-8601"),
            (" PT1H", "is not an ISO-8601"),
        ] {
            let err = IsoDuration::parse("delay", bad).unwrap_err();
            assert!(err.to_string().contains(said), "{bad}: {err}");
            assert!(
                IsoDuration::parse_millis_or_zero("delay", bad).is_err(),
                "{bad} is not a zero either"
            );
        }
        for (good, millis) in [
            ("PT4294967295S", 4_294_967_295_000),
            ("P1Y", 0),
            ("PT1,5S", 1_500),
            ("PT0.5S", 500),
            ("P2W", 1_209_600_000),
            ("P1DT1H1M1.001S", 90_061_001),
        ] {
            match IsoDuration::parse("d", good) {
                Ok(d) => assert_eq!(d.as_millis(), millis, "{good}"),
                // Years are read, then refused by name.
                Err(e) => assert!(e.to_string().contains("years or months"), "{good}: {e}"),
            }
        }
        assert_eq!(IsoDuration::parse_millis_or_zero("g", "PT0S").unwrap(), 0);
        assert_eq!(IsoDuration::parse_millis_or_zero("g", "P0D").unwrap(), 0);
    }

    #[test]
    fn refuses_garbage_zero_and_calendar_units() {
        for bad in ["", "1h", "PT", "P1M", "P1Y", "PT0S", "hello"] {
            let err = IsoDuration::parse("responseDeadline", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("responseDeadline:"),
                "{bad}: {err}"
            );
        }
    }
}
