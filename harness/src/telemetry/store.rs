//! What a capture has received so far: the spans in arrival order and, for metrics, one running
//! total per series that works for cumulative and delta exporters alike.

use std::collections::{BTreeMap, HashMap, btree_map, hash_map};

use super::convert::{Kind, SeriesUpdate, SeriesValue, Temporality, attributes_key};
use super::model::{
    Attributes, CapturedMetric, HistogramPoint, MetricData, MetricsSnapshot, NumberPoint,
};

/// Locks a mutex, ignoring poisoning: the stores hold plain data that stays consistent. (The
/// shared helper, re-exported here for the telemetry modules that lock their stores.)
pub(crate) use support::sync::lock;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    resource: String,
    scope: String,
    name: String,
    attributes: String,
}

#[derive(Debug)]
struct Series {
    name: String,
    unit: String,
    description: String,
    kind: Kind,
    attributes: Attributes,
    /// What earlier runs of the series added up to (delta exports, or a cumulative series that
    /// restarted with a new start time).
    offset: Option<SeriesValue>,
    /// The value of the latest export (cumulative) or the latest change (delta).
    last: SeriesValue,
    start_unix_nano: u64,
    time_unix_nano: u64,
}

impl Series {
    fn total(&self) -> SeriesValue {
        match &self.offset {
            Some(offset) => offset.add(&self.last),
            None => self.last.clone(),
        }
    }
}

/// Running totals per series (resource, scope, metric name, attribute set).
///
/// Cumulative points replace the series' value (the newest wins; a new start time means the
/// emitter restarted, and what it had counted is kept as an offset); delta points add to it;
/// gauge points replace it. So the total of a series is "everything since the capture began"
/// for either temporality, and the delta between two snapshots is what happened in between.
#[derive(Debug, Default)]
pub(crate) struct MetricStore {
    series: HashMap<SeriesKey, Series>,
    /// The number of metric exports received.
    pub exports: u64,
    /// The latest collection time (`time_unix_nano`) seen in any data point.
    pub latest_collection_unix_nano: u64,
}

impl MetricStore {
    /// Files the data points of one export.
    pub fn apply(&mut self, updates: Vec<SeriesUpdate>) {
        self.exports += 1;
        for u in updates {
            self.latest_collection_unix_nano =
                self.latest_collection_unix_nano.max(u.time_unix_nano);
            let key = SeriesKey {
                resource: u.resource_key,
                scope: u.scope,
                name: u.name.clone(),
                attributes: attributes_key(&u.attributes),
            };
            match self.series.entry(key) {
                hash_map::Entry::Vacant(entry) => {
                    entry.insert(Series {
                        name: u.name,
                        unit: u.unit,
                        description: u.description,
                        kind: u.kind,
                        attributes: u.attributes,
                        offset: None,
                        last: u.value,
                        start_unix_nano: u.start_unix_nano,
                        time_unix_nano: u.time_unix_nano,
                    });
                }
                hash_map::Entry::Occupied(mut entry) => {
                    let series = entry.get_mut();
                    series.kind = u.kind;
                    match u.temporality {
                        Temporality::LastValue => {
                            if u.time_unix_nano >= series.time_unix_nano {
                                series.offset = None;
                                series.last = u.value;
                            }
                        }
                        Temporality::Cumulative => {
                            if u.start_unix_nano != series.start_unix_nano {
                                series.offset = Some(series.total());
                                series.last = u.value;
                                series.start_unix_nano = u.start_unix_nano;
                            } else if u.time_unix_nano >= series.time_unix_nano {
                                series.last = u.value;
                            }
                        }
                        Temporality::Delta => {
                            series.offset = Some(series.total());
                            series.last = u.value;
                            series.start_unix_nano = u.start_unix_nano;
                        }
                    }
                    series.time_unix_nano = series.time_unix_nano.max(u.time_unix_nano);
                }
            }
        }
    }

    /// The current totals, merged over resources and scopes per (metric name, attribute set).
    pub fn snapshot(&self) -> MetricsSnapshot {
        // name -> attributes key -> (attributes, total, time)
        type Merged = BTreeMap<String, (Attributes, SeriesValue, u64)>;
        let mut by_name: BTreeMap<String, (&Series, Merged)> = BTreeMap::new();
        for series in self.series.values() {
            let (first, merged) = by_name
                .entry(series.name.clone())
                .or_insert_with(|| (series, BTreeMap::new()));
            if first.kind != series.kind {
                continue;
            }
            let total = series.total();
            match merged.entry(attributes_key(&series.attributes)) {
                btree_map::Entry::Vacant(entry) => {
                    entry.insert((series.attributes.clone(), total, series.time_unix_nano));
                }
                btree_map::Entry::Occupied(mut entry) => {
                    let (_, value, time) = entry.get_mut();
                    if series.kind == Kind::Gauge {
                        if series.time_unix_nano >= *time {
                            *value = total;
                            *time = series.time_unix_nano;
                        }
                    } else {
                        *value = value.add(&total);
                    }
                }
            }
        }
        let metrics = by_name
            .into_iter()
            .map(|(name, (first, merged))| {
                let data = match first.kind {
                    Kind::Histogram => MetricData::Histogram {
                        points: merged
                            .into_values()
                            .map(|(attributes, value, _)| histogram_point(attributes, value))
                            .collect(),
                    },
                    Kind::Sum { monotonic } => MetricData::Sum {
                        points: merged
                            .into_values()
                            .map(|(attributes, value, _)| number_point(attributes, value))
                            .collect(),
                        monotonic,
                    },
                    Kind::Gauge => MetricData::Gauge {
                        points: merged
                            .into_values()
                            .map(|(attributes, value, _)| number_point(attributes, value))
                            .collect(),
                    },
                };
                let metric = CapturedMetric {
                    name: name.clone(),
                    unit: first.unit.clone(),
                    description: first.description.clone(),
                    data,
                };
                (name, metric)
            })
            .collect();
        MetricsSnapshot { metrics }
    }
}

fn histogram_point(attributes: Attributes, value: SeriesValue) -> HistogramPoint {
    match value {
        SeriesValue::Histogram {
            count,
            sum,
            bounds,
            counts,
        } => HistogramPoint {
            attributes,
            count,
            sum,
            bucket_bounds: bounds,
            bucket_counts: counts,
        },
        SeriesValue::Number(n) => HistogramPoint {
            attributes,
            count: 1,
            sum: n,
            bucket_bounds: Vec::new(),
            bucket_counts: Vec::new(),
        },
    }
}

fn number_point(attributes: Attributes, value: SeriesValue) -> NumberPoint {
    let value = match value {
        SeriesValue::Number(n) => n,
        SeriesValue::Histogram { sum, .. } => sum,
    };
    NumberPoint { attributes, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::model::AttrValue;

    /// The change of the `requests` counter, all attribute sets, since `base`.
    fn requests_since(store: &MetricStore, base: &MetricsSnapshot) -> f64 {
        store
            .snapshot()
            .delta_since(base)
            .counter_value("requests", &[])
    }

    fn update(temporality: Temporality, start: u64, time: u64, value: f64) -> SeriesUpdate {
        let attributes: Attributes = [("route".to_owned(), AttrValue::from("/v1/chat"))].into();
        SeriesUpdate {
            resource_key: "r".into(),
            scope: "s".into(),
            name: "requests".into(),
            unit: "{request}".into(),
            description: String::new(),
            kind: Kind::Sum { monotonic: true },
            temporality,
            attributes,
            start_unix_nano: start,
            time_unix_nano: time,
            value: SeriesValue::Number(value),
        }
    }

    #[test]
    fn cumulative_keeps_latest_and_survives_restart() {
        let mut store = MetricStore::default();
        store.apply(vec![update(Temporality::Cumulative, 1, 10, 2.0)]);
        let base = store.snapshot();
        store.apply(vec![update(Temporality::Cumulative, 1, 20, 5.0)]);
        store.apply(vec![update(Temporality::Cumulative, 1, 15, 4.0)]); // late, older export
        assert_eq!(requests_since(&store, &base), 3.0);
        store.apply(vec![update(Temporality::Cumulative, 30, 40, 1.0)]); // restarted emitter
        assert_eq!(requests_since(&store, &base), 4.0);
        assert_eq!(store.exports, 4);
        assert_eq!(store.latest_collection_unix_nano, 40);
    }

    #[test]
    fn delta_exports_accumulate() {
        let mut store = MetricStore::default();
        store.apply(vec![update(Temporality::Delta, 1, 10, 2.0)]);
        let base = store.snapshot();
        store.apply(vec![update(Temporality::Delta, 10, 20, 3.0)]);
        store.apply(vec![update(Temporality::Delta, 20, 30, 1.0)]);
        assert_eq!(
            store
                .snapshot()
                .counter_value("requests", &[("route", "/v1/chat")]),
            6.0
        );
        assert_eq!(requests_since(&store, &base), 4.0);
    }
}
