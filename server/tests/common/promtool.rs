//! The Prometheus project's own linter, and a reader of the samples it accepted.
#![allow(clippy::unwrap_used)]

/// Runs the Prometheus project's own linter over `text`: `promtool check metrics` (Debian's
/// `prometheus` package; `scripts/setup.sh` installs it).
pub fn promtool(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool (scripts/setup.sh installs it): {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Parses `{a="x",b="y"}` with the format's escapes; returns the pairs.
pub fn labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => break after.len(),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => break after.len(),
            }
        };
        out.push((name.to_owned(), value));
        rest = after.get(end + 1..).unwrap_or("");
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

/// One sample: its name, its labels and its value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The samples of an exposition promtool accepted, to read the numbers from.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, ls) = match series.split_once('{') {
                Some((n, l)) => (n, labels(l.strip_suffix('}').unwrap())),
                None => (series, Vec::new()),
            };
            (name.to_owned(), ls, value.parse().unwrap())
        })
        .collect()
}
