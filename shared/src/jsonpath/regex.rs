//! The regular expressions of `match()` and `search()`: compiled once per pattern into a bounded
//! cache, held to a size limit, and run against a per-evaluation budget.
//!
//! `regex-lite` matches in `O(states × text)` time, so a pattern's cost is bounded by its
//! compiled size and the text it runs on. A pattern is compiled at the smallest of a few size
//! classes that holds it (at most [`REGEX_SIZE_LIMIT`] bytes of NFA; bigger is refused), and a
//! call is charged `states × (text bytes + 1)` before it runs, where `states` is the class over
//! 16 (every NFA state is larger than 16 bytes). The evaluation that makes the calls holds the
//! budget ([`Budget`]); a call it cannot afford is false, and marks the evaluation as over
//! budget.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The longest pattern `match()` and `search()` take, in bytes.
pub const MAX_PATTERN_BYTES: usize = 512;
/// The most heap one compiled pattern may take (`regex-lite`'s size limit).
pub const REGEX_SIZE_LIMIT: usize = 16 * 1024;
/// The most patterns kept compiled; a full cache starts over.
pub const REGEX_CACHE_ENTRIES: usize = 256;
/// Regex work one filter evaluation may do, in NFA state × text byte steps (about 5-15 ns each
/// on a 2-core machine: at most some 0.1 s).
pub const REGEX_BUDGET: u64 = 8_000_000;

/// Size classes tried in turn; a pattern's class bounds its NFA's state count.
const SIZE_CLASSES: [usize; 3] = [1024, 4 * 1024, REGEX_SIZE_LIMIT];
/// Every NFA state of `regex-lite` is larger than this (its biggest variant holds a `Vec`).
const MIN_STATE_BYTES: usize = 16;
/// What compiling a pattern costs against the budget, per pattern byte.
const COMPILE_COST_PER_BYTE: u64 = 64;

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    TooLong(usize),
    TooBig,
    /// Not a pattern `regex-lite` reads: the RFC's answer is "false", not an error.
    Invalid,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternError::TooLong(len) => write!(
                f,
                "a match()/search() pattern is {len} bytes long; at most {MAX_PATTERN_BYTES}"
            ),
            PatternError::TooBig => write!(
                f,
                "a match()/search() pattern compiles to more than {REGEX_SIZE_LIMIT} bytes"
            ),
            PatternError::Invalid => f.write_str("a match()/search() pattern is invalid"),
        }
    }
}

#[derive(Debug)]
struct Compiled {
    regex: regex_lite::Regex,
    states: u64,
}

type Cache = HashMap<(bool, String), Result<Arc<Compiled>, PatternError>>;

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(HashMap::new()));

thread_local! {
    /// The budget of the evaluation running on this thread; `None` outside one.
    static FUEL: Cell<Option<u64>> = const { Cell::new(None) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The regex budget of one evaluation, installed on this thread while it lives.
#[derive(Debug)]
pub struct Budget {
    previous: Option<u64>,
    previous_exhausted: bool,
}

impl Budget {
    pub fn install() -> Budget {
        let budget = Budget {
            previous: FUEL.get(),
            previous_exhausted: EXHAUSTED.get(),
        };
        FUEL.set(Some(REGEX_BUDGET));
        EXHAUSTED.set(false);
        budget
    }

    /// Whether some call could not be afforded.
    pub fn exhausted(&self) -> bool {
        EXHAUSTED.get()
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        FUEL.set(self.previous);
        EXHAUSTED.set(self.previous_exhausted);
    }
}

/// Takes `cost` from this thread's budget; false (and the evaluation marked exhausted) when it
/// cannot be afforded or no evaluation is running.
fn charge(cost: u64) -> bool {
    if EXHAUSTED.get() {
        return false;
    }
    match FUEL.get() {
        Some(fuel) if fuel >= cost => {
            // Cannot underflow: checked by the guard.
            FUEL.set(Some(fuel - cost));
            true
        }
        _ => {
            EXHAUSTED.set(true);
            false
        }
    }
}

/// Compiles `pattern` (`whole`: anchored at both ends, for `match()`), through the cache.
fn compiled(pattern: &str, whole: bool) -> Result<Arc<Compiled>, PatternError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(PatternError::TooLong(pattern.len()));
    }
    let key = (whole, pattern.to_owned());
    // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
    if let Some(hit) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    // At most 64 × 513: the pattern's length was capped above. Bounded work: at most three
    // compiles of at most MAX_PATTERN_BYTES.
    if !charge(COMPILE_COST_PER_BYTE * (pattern.len() as u64 + 1)) {
        return Err(PatternError::TooBig);
    }
    let result = compile(pattern, whole);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= REGEX_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, result.clone());
    result
}

fn compile(pattern: &str, whole: bool) -> Result<Arc<Compiled>, PatternError> {
    // CRLF mode: I-Regexp's `.` matches any character but `\n` and `\r`.
    let text = if whole {
        format!("(?R)^(?:{pattern})$")
    } else {
        format!("(?R)(?:{pattern})")
    };
    for class in SIZE_CLASSES {
        match regex_lite::RegexBuilder::new(&text)
            .size_limit(class)
            .build()
        {
            Ok(regex) => {
                return Ok(Arc::new(Compiled {
                    regex,
                    states: (class / MIN_STATE_BYTES) as u64,
                }));
            }
            Err(e) if e.to_string().contains("size limit") => continue,
            Err(_) => return Err(PatternError::Invalid),
        }
    }
    Err(PatternError::TooBig)
}

/// Checks a pattern written in a filter, at save time: too long or too big is an error there
/// (an invalid one is not: the RFC makes it false).
pub fn check_literal(pattern: &str) -> Result<(), PatternError> {
    let _budget = Budget::install();
    for whole in [true, false] {
        match compiled(pattern, whole) {
            Ok(_) | Err(PatternError::Invalid) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs `pattern` on `text` within this thread's budget; false for an invalid or unaffordable
/// pattern, as the RFC makes any unusable pattern.
pub fn test(pattern: &str, text: &str, whole: bool) -> bool {
    let Ok(compiled) = compiled(pattern, whole) else {
        return false;
    };
    let cost = compiled.states.saturating_mul(text.len() as u64 + 1);
    charge(cost) && compiled.regex.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_over_the_limits_are_refused_and_invalid_ones_are_not() {
        assert_eq!(
            check_literal(&"a".repeat(MAX_PATTERN_BYTES + 1)),
            Err(PatternError::TooLong(MAX_PATTERN_BYTES + 1))
        );
        assert_eq!(check_literal("(?:a{100}){100}"), Err(PatternError::TooBig));
        assert_eq!(check_literal("("), Ok(()));
        assert_eq!(check_literal("[a-z]+@example\\.com"), Ok(()));
    }

    #[test]
    fn a_call_outside_an_evaluation_or_over_its_budget_is_false() {
        assert!(!test("a", "a", true), "no budget installed");
        let budget = Budget::install();
        assert!(test("a+", "aaa", true));
        assert!(!budget.exhausted());
        // (?:a*){20}b walks every state at each byte of a run of a's: 1 MiB of them would take
        // about a second; it is refused before it starts.
        let big = "a".repeat(1 << 20);
        let started = std::time::Instant::now();
        assert!(!test("(?:a*){20}b", &big, false));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert!(budget.exhausted());
        assert!(!test("a", "a", true), "nothing more runs once exhausted");
        drop(budget);
        assert!(FUEL.get().is_none());
    }

    #[test]
    fn a_pattern_is_compiled_once() {
        let _budget = Budget::install();
        let first = compiled("once+", true).unwrap();
        let again = compiled("once+", true).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &compiled("once+", false).unwrap()));
    }
}
