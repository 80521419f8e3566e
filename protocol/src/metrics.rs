//! Metric series as they cross the wire: the kinds, the aggregations a reader may ask
//! for, a series' name and labels, and a series read over a time range. The store that
//! keeps them lives in the runtime; the Metrics page and the widgets read these.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kinds of metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up; read as a rate or an increase.
    Counter,
    /// A value that is set (or moved up and down).
    Gauge,
    /// A distribution of observed values; read as percentiles.
    Histogram,
}

impl Kind {
    /// The aggregation a chart uses when none is chosen.
    pub fn default_agg(self) -> Agg {
        match self {
            Kind::Counter => Agg::Rate,
            Kind::Gauge => Agg::Last,
            Kind::Histogram => Agg::P95,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// How a window of buckets becomes one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// The last value (a gauge's latest, a counter's total).
    Last,
    /// The sum of observations (a counter's increase).
    Sum,
    /// The sum per second.
    Rate,
    /// The mean of observations.
    Avg,
    Min,
    Max,
    /// Number of observations.
    Count,
    P50,
    P95,
    P99,
}

impl Agg {
    pub const ALL: [Agg; 10] = [
        Agg::Last,
        Agg::Sum,
        Agg::Rate,
        Agg::Avg,
        Agg::Min,
        Agg::Max,
        Agg::Count,
        Agg::P50,
        Agg::P95,
        Agg::P99,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Agg::Last => "last",
            Agg::Sum => "sum",
            Agg::Rate => "rate",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Count => "count",
            Agg::P50 => "p50",
            Agg::P95 => "p95",
            Agg::P99 => "p99",
        }
    }
}

impl std::str::FromStr for Agg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agg::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<_> = Agg::ALL.iter().map(|a| a.name()).collect();
            format!("unknown aggregation {s:?}; use one of {}", names.join(", "))
        })
    }
}

/// A series name and its labels, sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        SeriesKey {
            name: name.to_owned(),
            labels,
        }
    }

    /// `name{k=v,...}`, the way the Metrics page and CSV export show a series.
    pub fn display(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// A series' description, for the API and the Metrics page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SeriesInfoWire")]
pub struct SeriesInfo {
    #[serde(flatten)]
    pub key: SeriesKey,
    pub kind: Kind,
    pub description: Option<String>,
}

/// A series read over a time range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SeriesDataWire")]
pub struct SeriesData {
    #[serde(flatten)]
    pub key: SeriesKey,
    pub kind: Kind,
    pub agg: Agg,
    /// Seconds per point (the step asked for, rounded up to the resolution used).
    pub step: u64,
    /// (Unix seconds, value); `None` where the window holds nothing.
    pub points: Vec<(u64, Option<f64>)>,
}

// The two above, as they read from the wire: the key's fields inline. Read through these
// rather than serde's `flatten`, which buffers every field first (and costs the browser's
// bundle the machinery for it).
#[derive(Deserialize)]
struct SeriesInfoWire {
    name: String,
    labels: Vec<(String, String)>,
    kind: Kind,
    description: Option<String>,
}

impl From<SeriesInfoWire> for SeriesInfo {
    fn from(w: SeriesInfoWire) -> Self {
        SeriesInfo {
            key: SeriesKey {
                name: w.name,
                labels: w.labels,
            },
            kind: w.kind,
            description: w.description,
        }
    }
}

#[derive(Deserialize)]
struct SeriesDataWire {
    name: String,
    labels: Vec<(String, String)>,
    kind: Kind,
    agg: Agg,
    step: u64,
    points: Vec<(u64, Option<f64>)>,
}

impl From<SeriesDataWire> for SeriesData {
    fn from(w: SeriesDataWire) -> Self {
        SeriesData {
            key: SeriesKey {
                name: w.name,
                labels: w.labels,
            },
            kind: w.kind,
            agg: w.agg,
            step: w.step,
            points: w.points,
        }
    }
}

/// What a widget asks for: some series over the last `range` seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesQuery {
    pub series: Vec<SeriesRef>,
    /// Default: each series kind's own.
    pub agg: Option<Agg>,
    pub range: u64,
    /// Seconds per point; default: `range / 300`, at least 1.
    pub step: Option<u64>,
    /// Only the points from this Unix second on: a chart that has the rest asks for what
    /// is new (the windows are the same as in a full read, so the two join up).
    #[serde(default)]
    pub since: Option<u64>,
}

/// A series by name, with labels it must carry: `name` or `name{k=v,k2=v2}`. On the wire
/// and in TOML it is that string. Every series whose labels include these is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl SeriesRef {
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        SeriesRef {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl fmt::Display for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "{{{}}}", labels.join(","))?;
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

impl FromStr for SeriesRef {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("series {raw:?}: {why} (write name or name{{key=value}})");
        let raw_t = raw.trim();
        let (name, labels) = match raw_t.split_once('{') {
            None => (raw_t, ""),
            Some((name, rest)) => (
                name,
                rest.strip_suffix('}')
                    .ok_or_else(|| bad("the labels have no closing brace"))?,
            ),
        };
        if !is_name(name) {
            return Err(bad("the name must be letters, digits, _ - . or :"));
        }
        let mut out = Vec::new();
        for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("a label needs key=value"))?;
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if !is_name(k) || v.is_empty() {
                return Err(bad("a label needs key=value"));
            }
            out.push((k.to_owned(), v.to_owned()));
        }
        Ok(SeriesRef {
            name: name.to_owned(),
            labels: out,
        })
    }
}

impl Serialize for SeriesRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeriesRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `90`, `90s`, `15m`, `6h`, `1d` into seconds.
pub fn parse_secs(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let bad = || format!("expected a duration such as 90s, 15m, 6h or 1d; got {raw:?}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(n.saturating_mul(unit))
}

/// A time range as seconds on the wire, and in TOML either seconds or `"30m"`.
pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(n),
            Raw::Text(t) => super::parse_secs(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_refs_parse_print_and_refuse_garbage() {
        let r: SeriesRef = "flowdeck_items_total{outcome=completed, pipeline=\"demo\"}"
            .parse()
            .unwrap();
        assert_eq!(r.name, "flowdeck_items_total");
        assert_eq!(
            r.labels,
            vec![
                ("outcome".into(), "completed".into()),
                ("pipeline".into(), "demo".into())
            ]
        );
        assert_eq!(
            r.to_string(),
            "flowdeck_items_total{outcome=completed,pipeline=demo}"
        );
        assert_eq!("memory".parse::<SeriesRef>().unwrap().labels, vec![]);
        for bad in ["", "a b", "x{y}", "x{y=1", "x{=1}"] {
            let err = bad.parse::<SeriesRef>().unwrap_err();
            assert!(err.contains("series"), "{bad}: {err}");
        }
    }
}
