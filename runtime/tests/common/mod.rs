//! What the join tests share.

use flowdeck_runtime::Why;

/// A part's reason for missing, short: `failed:<kind>`, `cancelled`, `filtered:<stage>`,
/// `routed:<stage>`, `timed out`.
pub fn why(w: &Why) -> String {
    match w {
        Why::Failed { error } => format!("failed:{}", error.kind),
        Why::Cancelled => "cancelled".into(),
        Why::FilteredOut { stage } => format!("filtered:{stage}"),
        Why::RoutedElsewhere { stage } => format!("routed:{stage}"),
        Why::TimedOut => "timed out".into(),
        _ => "other".into(),
    }
}
