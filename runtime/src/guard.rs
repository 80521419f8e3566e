//! Isolation of the user's code. Every closure a user hands the runtime (a stage's task,
//! `classify`, `retry_if`, a routing filter, a tracker callback, a monitor) may panic; a
//! panic must fail one item, or be logged, and never take a worker, the tracker or the run
//! down with it.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into its message.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic the runtime
/// never reads state the closure was mutating, only the message, and the user's own state
/// is the user's to guard (as with `std::thread::spawn`).
pub fn call<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| message(p.as_ref()))
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(call(|| 2 + 2), Ok(4));
        assert_eq!(call(|| -> u8 { panic!("boom") }), Err("boom".to_owned()));
        let n = 7;
        assert_eq!(
            call(|| -> u8 { panic!("item {n}") }),
            Err("item 7".to_owned())
        );
    }
}
