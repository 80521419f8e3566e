//! The exact syntax of the API's free-form query parameters, as the OpenAPI document states
//! it (the `pattern` of each): what matches is taken, what does not is a 400. The two must
//! agree both ways, so that a client generating requests from the document (schemathesis
//! does, in CI) never has a valid request refused nor an invalid one accepted. The
//! patterns are kept here beside the code that checks them; `openapi.json` repeats them.

use flowdeck_protocol::ItemId;

/// Seconds, minutes, hours or days, from 1 s to 24 h, no leading zeros: `90`, `90s`, `15m`,
/// `6h`, `24h`, `1d`.
pub const DURATION: &str = "^(?:(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s?|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m|(?:[1-9]|1[0-9]|2[0-4])h|1d)$";

/// Series names, each with optional labels: `a,b{stage=enrich,outcome=failed}`. Names,
/// label keys and label values are letters, digits and `_ . : -`.
pub const SERIES_NAMES: &str = "^[A-Za-z0-9_.:-]+(?:\\{[A-Za-z0-9_.:-]+=[A-Za-z0-9_.:-]+(?:,[A-Za-z0-9_.:-]+=[A-Za-z0-9_.:-]+)*\\})?(?:,[A-Za-z0-9_.:-]+(?:\\{[A-Za-z0-9_.:-]+=[A-Za-z0-9_.:-]+(?:,[A-Za-z0-9_.:-]+=[A-Za-z0-9_.:-]+)*\\})?)*$";

/// A glob over a log record's source made of `*` (any run of characters) and `?` (one):
/// no `**`, no `[`, no `]`.
pub const SOURCE_GLOB: &str = "^(?:[^\\[\\]*]|\\*(?!\\*))*$";

/// A task id: digits, no sign.
pub const TASK_ID: &str = "^[0-9]{1,20}$";

const MAX_SECS: u64 = 86_400;

/// A [`DURATION`] in seconds.
pub fn duration(raw: &str) -> Option<u64> {
    let (digits, unit, most) = match raw.as_bytes().last()? {
        b's' => (&raw[..raw.len() - 1], 1, MAX_SECS),
        b'm' => (&raw[..raw.len() - 1], 60, 1440),
        b'h' => (&raw[..raw.len() - 1], 3600, 24),
        b'd' => (&raw[..raw.len() - 1], 86_400, 1),
        _ => (raw, 1, MAX_SECS),
    };
    let n = number(digits)?;
    (1..=most).contains(&n).then_some(n * unit)
}

/// Digits with no leading zero, as a number.
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Whether `raw` is [`SERIES_NAMES`].
pub fn series_names(raw: &str) -> bool {
    let mut rest = raw;
    loop {
        let end = rest.find([',', '{']).unwrap_or(rest.len());
        if !is_token(&rest[..end]) {
            return false;
        }
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix('{') {
            let Some(close) = after.find('}') else {
                return false;
            };
            let labels = &after[..close];
            let ok = labels.split(',').all(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| is_token(k) && is_token(v))
            });
            if !ok {
                return false;
            }
            rest = &after[close + 1..];
        }
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => return rest.is_empty(),
        }
    }
}

/// Whether `raw` is [`SOURCE_GLOB`].
pub fn source_glob(raw: &str) -> bool {
    !raw.contains("**") && !raw.contains(['[', ']'])
}

/// A [`TASK_ID`]. Digits too many for an id name no task: `ItemId::MAX`, which is never
/// issued, so the answer is "unknown task" (404) as for any id not retained.
pub fn task_id(raw: &str) -> Option<ItemId> {
    (!raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().unwrap_or(ItemId::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_exact() {
        for (raw, secs) in [
            ("1", 1),
            ("90", 90),
            ("90s", 90),
            ("86400", 86_400),
            ("15m", 900),
            ("1440m", 86_400),
            ("24h", 86_400),
            ("1d", 86_400),
        ] {
            assert_eq!(duration(raw), Some(secs), "{raw}");
        }
        for raw in [
            "", "0", "0s", "090", "86401", "1441m", "25h", "2d", "1w", " 5m", "5 m", "s", "+5",
        ] {
            assert_eq!(duration(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn series_names_are_exact() {
        for ok in [
            "a",
            "flowdeck_items_total{outcome=completed}",
            "a,b{stage=enrich,outcome=failed},c:d.e-f",
        ] {
            assert!(series_names(ok), "{ok}");
        }
        for bad in [
            "",
            ",",
            "a,",
            ",a",
            "a{",
            "a{}",
            "a{b}",
            "a{b=}",
            "a{=c}",
            "a{b=c",
            "a{b=c}}",
            "a b",
            " a",
            "a{b=c d}",
            "a{b=\"c\"}",
            "a{b=c},",
            "a{b=c}d",
        ] {
            assert!(!series_names(bad), "{bad:?}");
        }
    }

    #[test]
    fn globs_and_ids_are_exact() {
        assert!(source_glob("enrich-*") && source_glob("?ore") && source_glob(""));
        assert!(!source_glob("a**") && !source_glob("[ab]") && !source_glob("a]"));
        assert_eq!(task_id("42"), Some(42));
        assert_eq!(task_id("99999999999999999999"), Some(ItemId::MAX));
        for bad in ["", "+5", "-1", "1.5", "4 2", "123456789012345678901"] {
            assert_eq!(task_id(bad), None, "{bad:?}");
        }
    }
}
