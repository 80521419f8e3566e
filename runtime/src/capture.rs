//! Item data for the task page: what an item carried into a stage, kept as a preview so
//! that "why did this fail?" can be answered by looking at the input that failed.
//!
//! A stage opts in ([`crate::Stage::capture`] for a `Serialize` input, or
//! [`crate::Stage::preview`] with a function that makes something to show from any input).
//! Failures are always captured; other items by a sample. Every preview is redacted before
//! it is kept (named fields masked, then the user's hook), pretty-printed, and cut at a
//! byte cap; the tracker bounds their total (see `tracker::record`). A stage that does not
//! opt in pays nothing: no preview is made and no event grows.

use std::sync::Arc;

use flowdeck_protocol::{ItemId, Preview};
use serde::Serialize;
use serde_json::Value;

/// Fields masked in every preview unless [`Capture::mask`] says otherwise, compared without
/// regard to case, at any depth.
pub const DEFAULT_MASK: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
];

/// What a masked value is shown as.
pub const MASKED: &str = "••••••";

/// How a stage captures its items' inputs.
///
/// ```
/// use flowdeck_runtime::{Capture, Stage};
///
/// #[derive(Clone, serde::Serialize)]
/// struct Order { id: u64, card_token: String, api_key: String }
///
/// let stage = Stage::map("charge", |o: Order, _cx| async move { Ok::<_, String>(o.id) })
///     .capture(Capture::failures().sample(0.01).max_bytes(4096).mask(["api_key", "card_token"]));
/// # let _ = stage;
/// ```
#[derive(Clone)]
pub struct Capture {
    pub(crate) sample: f64,
    pub(crate) max_bytes: usize,
    pub(crate) mask: Arc<[String]>,
    pub(crate) redact: Option<Redact>,
}

/// A user's redaction, run on the JSON after the masking.
pub(crate) type Redact = Arc<dyn Fn(&mut Value) + Send + Sync>;

impl Capture {
    /// Every failed item's input, and none of the others (add [`Capture::sample`]), at
    /// most 2 KiB each, with the [`DEFAULT_MASK`] fields masked.
    pub fn failures() -> Self {
        Capture {
            sample: 0.0,
            max_bytes: 2048,
            mask: DEFAULT_MASK.iter().map(|s| (*s).to_owned()).collect(),
            redact: None,
        }
    }

    /// Also this fraction of the items that do not fail (0.01 is one in a hundred; the
    /// choice is by item id, so an item sampled at one stage is sampled at every stage
    /// with the same fraction).
    pub fn sample(mut self, fraction: f64) -> Self {
        self.sample = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The most bytes of JSON kept per preview (at least 64); a longer one is cut and
    /// shows its original size.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(64);
        self
    }

    /// The fields to mask instead of [`DEFAULT_MASK`] (an empty list masks none).
    pub fn mask<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.mask = fields.into_iter().map(Into::into).collect();
        self
    }

    /// A redaction of your own, run on the JSON after the masking and before anything is
    /// kept (remove a field, shorten a text). A panic in it drops the preview.
    pub fn redact(mut self, f: impl Fn(&mut Value) + Send + Sync + 'static) -> Self {
        self.redact = Some(Arc::new(f));
        self
    }

    /// Whether item `id` is in the sample. A multiplicative hash of the id, so a run's
    /// sample is spread evenly and the same items are chosen at every stage.
    pub(crate) fn sampled(&self, id: ItemId) -> bool {
        if self.sample <= 0.0 {
            return false;
        }
        let spread = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        (spread as f64) < self.sample * (1u64 << 53) as f64
    }

    /// The kept form of `value`: masked, redacted, pretty-printed, cut.
    pub(crate) fn keep(&self, mut value: Value) -> Option<Preview> {
        if !self.mask.is_empty() {
            mask(&mut value, &self.mask);
        }
        if let Some(f) = &self.redact {
            crate::guard::call(|| f(&mut value)).ok()?;
        }
        let text = serde_json::to_string_pretty(&value).ok()?;
        Some(cut(text, self.max_bytes))
    }
}

/// Turns a stage's input into JSON (`None`: it would not serialize).
type MakeJson<I> = Arc<dyn Fn(&I) -> Option<Value> + Send + Sync>;

/// A stage's capture with the function that turns its input into JSON.
pub(crate) struct Capturer<I> {
    pub(crate) config: Capture,
    make: MakeJson<I>,
}

impl<I> Capturer<I> {
    /// Captures through `Serialize`.
    pub(crate) fn serialized(config: Capture) -> Self
    where
        I: Serialize,
    {
        Capturer {
            config,
            make: Arc::new(|i: &I| serde_json::to_value(i).ok()),
        }
    }

    /// Captures what `f` makes of the input.
    pub(crate) fn with<P: Serialize>(
        config: Capture,
        f: impl Fn(&I) -> P + Send + Sync + 'static,
    ) -> Self {
        Capturer {
            config,
            make: Arc::new(move |i: &I| serde_json::to_value(f(i)).ok()),
        }
    }

    /// The preview of `input`; `None` if the user's code panicked or made no JSON.
    pub(crate) fn preview(&self, input: &I) -> Option<Preview> {
        let value = crate::guard::call(|| (self.make)(input)).ok()??;
        self.config.keep(value)
    }
}

/// Masks the values of the named fields, at any depth.
fn mask(value: &mut Value, fields: &[String]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                    *v = Value::String(MASKED.to_owned());
                } else {
                    mask(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, fields)),
        _ => {}
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with its size before.
fn cut(mut text: String, max: usize) -> Preview {
    let bytes = text.len() as u64;
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Preview { text, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Doc {
        id: u64,
        title: String,
        auth: Auth,
        tags: Vec<Tag>,
    }
    #[derive(Serialize)]
    struct Auth {
        #[serde(rename = "API_Key")]
        api_key: String,
        user: String,
    }
    #[derive(Serialize)]
    struct Tag {
        token: String,
    }

    fn doc() -> Doc {
        Doc {
            id: 7,
            title: "Q3 report".into(),
            auth: Auth {
                api_key: "sk-live-123".into(),
                user: "ada".into(),
            },
            tags: vec![Tag {
                token: "t-1".into(),
            }],
        }
    }

    #[test]
    fn named_fields_are_masked_at_any_depth_and_in_any_case() {
        let c = Capturer::serialized(Capture::failures());
        let p = c.preview(&doc()).unwrap();
        assert!(!p.text.contains("sk-live-123"), "{}", p.text);
        assert!(!p.text.contains("t-1"), "{}", p.text);
        assert!(p.text.contains(MASKED));
        assert!(
            p.text.contains("\"user\": \"ada\""),
            "pretty-printed: {}",
            p.text
        );
        // Another list replaces the default; an empty one masks nothing.
        let p = Capturer::serialized(Capture::failures().mask(["title"]))
            .preview(&doc())
            .unwrap();
        assert!(p.text.contains("sk-live-123") && !p.text.contains("Q3 report"));
    }

    #[test]
    fn the_users_redaction_runs_after_the_mask_and_a_panic_in_it_keeps_nothing() {
        let c = Capturer::serialized(Capture::failures().redact(|v| {
            v["title"] = json!("[removed]");
        }));
        let p = c.preview(&doc()).unwrap();
        assert!(p.text.contains("[removed]") && !p.text.contains("Q3"));
        let c = Capturer::serialized(Capture::failures().redact(|_| panic!("bad hook")));
        assert_eq!(c.preview(&doc()), None, "nothing unredacted is kept");
    }

    #[test]
    fn a_long_preview_is_cut_at_a_character_boundary_and_keeps_its_size() {
        let long = "é".repeat(1000);
        let c = Capturer::with(Capture::failures().max_bytes(101), move |_: &u8| {
            long.clone()
        });
        let p = c.preview(&0).unwrap();
        assert!(p.text.len() <= 101, "{}", p.text.len());
        assert!(p.truncated());
        assert_eq!(p.bytes, 2002, "the quotes and 1,000 two-byte characters");
        assert!(p.text.starts_with("\"éé"));
        let short = Capturer::with(Capture::failures(), |n: &u8| *n)
            .preview(&5)
            .unwrap();
        assert_eq!((short.text.as_str(), short.truncated()), ("5", false));
    }

    #[test]
    fn a_preview_function_that_panics_keeps_nothing() {
        let c = Capturer::with(Capture::failures(), |_: &u8| -> u8 { panic!("no preview") });
        assert_eq!(c.preview(&1), None);
    }

    #[test]
    fn the_sample_takes_about_its_fraction_the_same_items_each_time() {
        let none = Capture::failures();
        assert!((0..10_000).all(|id| !none.sampled(id)));
        let all = Capture::failures().sample(1.0);
        assert!((0..10_000).all(|id| all.sampled(id)));
        let one_in_100 = Capture::failures().sample(0.01);
        let n = (0..100_000).filter(|&id| one_in_100.sampled(id)).count();
        assert!((800..1200).contains(&n), "{n} of 100,000");
        let again = (0..100_000).filter(|&id| one_in_100.sampled(id)).count();
        assert_eq!(n, again);
        assert_eq!(Capture::failures().sample(f64::NAN).sample, 0.0);
        assert_eq!(Capture::failures().sample(7.0).sample, 1.0);
    }
}
