//! Numbers that JSON carries but serde_json cannot: an integer beyond 64 bits is read as the
//! nearest `f64`, so it would be stored and sent on rounded. Requests refuse one (a 400 naming
//! where it is); a subscriber's answer holding one is a failed attempt.

/// The path (`input.identity.id`, `starts[2].input.n`; empty for the value itself) and text of the first integer in valid
/// JSON `bytes` that neither `i64` nor `u64` holds. serde_json reads such a number as the
/// nearest `f64`, so `123456789012345678901234567890` would be delivered as
/// `1.2345678901234568e29`: refused instead, as what would not arrive as it was sent. Only a
/// body with 19 digits in a row is read through: a positive number that fits has at most 20, a
/// negative one at most 19, and one of 19 digits below `i64::MIN` does not fit.
pub fn integer_beyond_64_bits(bytes: &[u8]) -> Option<(String, String)> {
    let mut run = 0usize;
    if !bytes.iter().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 19
    }) {
        return None;
    }
    /// Where the scan is: in an object (the member's name once read) or an array (the index).
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let path = |frames: &[Frame]| {
        let mut out = String::new();
        for frame in frames {
            match frame {
                Frame::Object(Some(name)) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Frame::Object(None) => {}
                Frame::Array(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    };
    let mut frames: Vec<Frame> = Vec::new();
    // In an object, whether the next string is a member's name.
    let mut name_next = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' => {
                frames.push(Frame::Object(None));
                name_next = true;
            }
            b'[' => frames.push(Frame::Array(0)),
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_)) => name_next = true,
                None => {}
            },
            b'"' => {
                let start = i;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
                if name_next {
                    let name = serde_json::from_slice::<String>(bytes.get(start..=i)?).ok()?;
                    if let Some(Frame::Object(slot)) = frames.last_mut() {
                        *slot = Some(name);
                    }
                    name_next = false;
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    i += 1;
                }
                let token = std::str::from_utf8(bytes.get(start..=i)?).ok()?;
                let integer = !token.contains(['.', 'e', 'E']);
                if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                    return Some((path(&frames), token.to_owned()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::integer_beyond_64_bits;

    #[test]
    fn names_the_path_of_the_first_integer_past_64_bits() {
        let found = |text: &str| integer_beyond_64_bits(text.as_bytes());
        assert_eq!(
            found(r#"{"a": {"b": [0, 18446744073709551616]}}"#),
            Some(("a.b[1]".to_owned(), "18446744073709551616".to_owned()))
        );
        assert_eq!(
            found("-9223372036854775809"),
            Some((String::new(), "-9223372036854775809".to_owned()))
        );
        assert_eq!(found(r#"{"n": 18446744073709551615}"#), None);
        assert_eq!(found(r#"{"s": "123456789012345678901234567890"}"#), None);
        assert_eq!(found(r#"[1e400, 1.00000000000000000000001]"#), None);
    }
}
