//! The store as the `metrics` crate's recorder: `metrics::counter!("x").increment(1)` and
//! friends anywhere in the process write into the store, with no flowdeck code at the call.

use std::sync::Arc;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};

use super::{Handle, Kind, MetricsStore, SeriesKey};

/// Hands the `metrics` crate handles into a [`MetricsStore`].
pub struct Recorder(pub MetricsStore);

impl MetricsStore {
    /// Makes this store the process's `metrics` recorder. Fails if one is already set (a
    /// process has one recorder).
    pub fn install(&self) -> Result<(), metrics::SetRecorderError<Recorder>> {
        metrics::set_global_recorder(Recorder(self.clone()))
    }
}

struct Shared(Handle);

impl CounterFn for Shared {
    fn increment(&self, value: u64) {
        self.0.increment(value);
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
    }
}

impl GaugeFn for Shared {
    fn increment(&self, value: f64) {
        self.0.add(value);
    }

    fn decrement(&self, value: f64) {
        self.0.add(-value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl HistogramFn for Shared {
    fn record(&self, value: f64) {
        self.0.record(value);
    }
}

impl Recorder {
    fn shared(&self, key: &Key, kind: Kind) -> Arc<Shared> {
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let refs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Arc::new(Shared(Handle(
            self.0.series(SeriesKey::new(key.name(), &refs), kind),
        )))
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key.as_str(), &description);
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key.as_str(), &description);
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key.as_str(), &description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.shared(key, Kind::Counter))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.shared(key, Kind::Gauge))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.shared(key, Kind::Histogram))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Agg;

    #[test]
    fn metrics_macros_write_into_the_store() {
        let store = MetricsStore::new();
        // Scoped to this thread, so tests do not fight over the global recorder.
        metrics::with_local_recorder(&Recorder(store.clone()), || {
            metrics::describe_counter!("orders", "Orders taken");
            metrics::counter!("orders", "shop" => "east").increment(3);
            metrics::gauge!("queue_depth").set(7.0);
            metrics::gauge!("queue_depth").increment(2.0);
            metrics::histogram!("order_value").record(12.5);
        });
        store.tick_at(10);
        let orders = store
            .read("orders", &[("shop", "east")], 10, 11, 1, Agg::Sum)
            .unwrap();
        assert_eq!(orders[0].points, vec![(10, Some(3.0))]);
        let depth = store
            .read("queue_depth", &[], 10, 11, 1, Agg::Last)
            .unwrap();
        assert_eq!(depth[0].points, vec![(10, Some(9.0))]);
        let info = store.list();
        let o = info.iter().find(|i| i.key.name == "orders").unwrap();
        assert_eq!(
            (o.kind, o.description.as_deref()),
            (Kind::Counter, Some("Orders taken"))
        );
        assert_eq!(
            info.iter()
                .find(|i| i.key.name == "order_value")
                .unwrap()
                .kind,
            Kind::Histogram
        );
    }
}
