//! Backend-neutral telemetry data: what a test asserts on, whichever backend captured it.
//!
//! Both capture backends (the in-memory SDK exporters of library mode and the OTLP/HTTP receiver
//! of server mode) convert what they receive into these types, through the same OTLP protobuf
//! messages, so a test sees identical values in both modes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The value of one span, event, resource or data-point attribute.
///
/// Serialized with its type as the key (`{"string": "m"}`, `{"i64": 42}`,
/// `{"string_array": ["stop"]}`, ...), so that it reads back as the same variant (the read API of
/// [`OtlpReceiver`](super::OtlpReceiver) relies on it); non-finite floats are written as the
/// strings `"NaN"`, `"inf"` and `"-inf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrValue {
    /// A string value.
    String(String),
    /// A boolean value.
    Bool(bool),
    /// A 64-bit signed integer value.
    I64(i64),
    /// A 64-bit floating point value.
    F64(#[serde(with = "wire_f64")] f64),
    /// An array of strings.
    StringArray(Vec<String>),
    /// An array of booleans.
    BoolArray(Vec<bool>),
    /// An array of 64-bit signed integers.
    I64Array(Vec<i64>),
    /// An array of 64-bit floating point values.
    F64Array(#[serde(with = "wire_f64::vec")] Vec<f64>),
    /// Raw bytes (OTLP `bytesValue`).
    Bytes(Vec<u8>),
    /// Anything else OTLP can carry (a key-value list, a mixed or nested array), rendered as text.
    Other(String),
}

impl AttrValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The number as `f64`, if this is a float or an integer value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::F64(v) => Some(*v),
            AttrValue::I64(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// The strings, if this is a string array.
    pub fn as_string_array(&self) -> Option<&[String]> {
        match self {
            AttrValue::StringArray(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    /// Scalars print bare (`input`, `42`, `true`), arrays as `[a, b]`: the form that the metric
    /// attribute filters of [`MetricsSnapshot`] compare against.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str("]")
        }
        match self {
            AttrValue::String(s) => f.write_str(s),
            AttrValue::Bool(v) => write!(f, "{v}"),
            AttrValue::I64(v) => write!(f, "{v}"),
            AttrValue::F64(v) => write!(f, "{v}"),
            AttrValue::StringArray(v) => list(f, v),
            AttrValue::BoolArray(v) => list(f, v),
            AttrValue::I64Array(v) => list(f, v),
            AttrValue::F64Array(v) => list(f, v),
            AttrValue::Bytes(v) => write!(f, "0x{}", hex::encode(v)),
            AttrValue::Other(s) => f.write_str(s),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        AttrValue::String(value.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        AttrValue::String(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        AttrValue::I64(value)
    }
}

impl From<f64> for AttrValue {
    fn from(value: f64) -> Self {
        AttrValue::F64(value)
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        AttrValue::Bool(value)
    }
}

/// Attributes by key, sorted.
pub type Attributes = BTreeMap<String, AttrValue>;

/// The kind of a span, as in the OpenTelemetry API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpanKind {
    /// An internal operation (also what OTLP's "unspecified" maps to).
    Internal,
    /// The server side of a synchronous remote call.
    Server,
    /// The client side of a synchronous remote call.
    Client,
    /// The sender of an asynchronous message.
    Producer,
    /// The receiver of an asynchronous message.
    Consumer,
}

/// The status of a span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanStatus {
    /// No status was set.
    Unset,
    /// The operation was marked successful.
    Ok,
    /// The operation failed, with the status description (possibly empty).
    Error(String),
}

/// An event recorded on a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedEvent {
    /// The event name.
    pub name: String,
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The event attributes.
    pub attributes: Attributes,
}

/// One finished span, as exported by the system under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedSpan {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id, 16 lowercase hex digits.
    pub span_id: String,
    /// The parent span id (16 lowercase hex digits), `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// The span attributes.
    pub attributes: Attributes,
    /// The span status.
    pub status: SpanStatus,
    /// Start time, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End time, in nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// The events recorded on the span, in order.
    pub events: Vec<CapturedEvent>,
    /// The attributes of the resource that emitted the span (`service.name`, ...).
    pub resource: Attributes,
    /// The name of the instrumentation scope (the tracer name).
    pub scope_name: String,
    /// The version of the instrumentation scope, when it has one.
    pub scope_version: Option<String>,
}

impl CapturedSpan {
    /// The attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The string attribute `key`, if present and a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// The integer attribute `key`, if present and an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    /// The numeric attribute `key` as `f64`, if present and a float or an integer.
    pub fn f64_attr(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(AttrValue::as_f64)
    }

    /// The boolean attribute `key`, if present and a boolean.
    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(AttrValue::as_bool)
    }

    /// The string-array attribute `key`, if present and a string array.
    pub fn string_array_attr(&self, key: &str) -> Option<&[String]> {
        self.attr(key).and_then(AttrValue::as_string_array)
    }

    /// The resource attribute `key` (for example `service.name`), if present.
    pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        self.resource.get(key)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }

    /// Whether `parent` is this span's direct parent (same trace, parent id equal to its id).
    pub fn is_child_of(&self, parent: &CapturedSpan) -> bool {
        self.trace_id == parent.trace_id
            && self.parent_span_id.as_deref() == Some(parent.span_id.as_str())
    }

    /// Whether the span status is an error.
    pub fn is_error(&self) -> bool {
        matches!(self.status, SpanStatus::Error(_))
    }

    /// The span duration in nanoseconds (zero if the clock went backwards).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// The events named `name`, in order.
    pub fn events_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a CapturedEvent> {
        self.events.iter().filter(move |event| event.name == name)
    }
}

/// One histogram data point: the totals of one attribute set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramPoint {
    /// The attributes identifying the time series.
    pub attributes: Attributes,
    /// The number of recorded measurements.
    pub count: u64,
    /// The sum of the recorded measurements.
    #[serde(with = "wire_f64")]
    pub sum: f64,
    /// The explicit bucket upper bounds (the last bucket, up to +inf, is implied); empty for
    /// exponential histograms, which are reduced to count and sum.
    #[serde(with = "wire_f64::vec")]
    pub bucket_bounds: Vec<f64>,
    /// The count of each bucket (`bucket_bounds.len() + 1` entries, or empty).
    pub bucket_counts: Vec<u64>,
}

/// One sum (counter, up-down counter) or gauge data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberPoint {
    /// The attributes identifying the time series.
    pub attributes: Attributes,
    /// The value; integer data points are converted to `f64`.
    #[serde(with = "wire_f64")]
    pub value: f64,
}

/// The data of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricData {
    /// A histogram (explicit buckets; exponential histograms keep only count and sum).
    Histogram {
        /// One point per attribute set.
        points: Vec<HistogramPoint>,
    },
    /// A sum: a counter when `monotonic`, an up-down counter otherwise.
    Sum {
        /// One point per attribute set.
        points: Vec<NumberPoint>,
        /// Whether the sum only increases.
        monotonic: bool,
    },
    /// A gauge: the last value of each attribute set.
    Gauge {
        /// One point per attribute set.
        points: Vec<NumberPoint>,
    },
}

/// One metric (instrument) with its data points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedMetric {
    /// The instrument name, e.g. `gen_ai.client.token.usage`.
    pub name: String,
    /// The unit, e.g. `{token}` or `s`.
    pub unit: String,
    /// The instrument description.
    pub description: String,
    /// The data points.
    pub data: MetricData,
}

impl CapturedMetric {
    /// The histogram points whose attributes match `filter` (empty if not a histogram).
    pub fn histogram_points<'a>(
        &'a self,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a HistogramPoint> {
        let points: &[HistogramPoint] = match &self.data {
            MetricData::Histogram { points } => points,
            _ => &[],
        };
        points
            .iter()
            .filter(move |p| attributes_match(&p.attributes, filter))
    }

    /// The sum or gauge points whose attributes match `filter` (empty for histograms).
    pub fn number_points<'a>(
        &'a self,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a NumberPoint> {
        let points: &[NumberPoint] = match &self.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => points,
            MetricData::Histogram { .. } => &[],
        };
        points
            .iter()
            .filter(move |p| attributes_match(&p.attributes, filter))
    }
}

/// Whether `attributes` contain every `(key, value)` of `filter`, comparing the attribute's
/// [`Display`](fmt::Display) form (so `("http.response.status_code", "200")` matches an integer).
pub fn attributes_match(attributes: &Attributes, filter: &[(&str, &str)]) -> bool {
    filter.iter().all(|(key, expected)| {
        attributes
            .get(*key)
            .is_some_and(|value| value.to_string() == *expected)
    })
}

/// The metrics seen at one moment, or the change between two such moments (see
/// [`MetricsSnapshot::delta_since`]). Values are totals per (metric, attribute set) since the
/// capture started, whatever temporality the exporter used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The metrics by name.
    pub metrics: BTreeMap<String, CapturedMetric>,
}

impl MetricsSnapshot {
    /// The metric named `name`, if it has any point.
    pub fn metric(&self, name: &str) -> Option<&CapturedMetric> {
        self.metrics.get(name)
    }

    /// The names of the metrics present.
    pub fn names(&self) -> Vec<&str> {
        self.metrics.keys().map(String::as_str).collect()
    }

    /// Whether there is no metric at all.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The sum of the histogram `name` over the points matching `filter` (0 if none).
    pub fn histogram_sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.metric(name)
            .map(|m| m.histogram_points(filter).map(|p| p.sum).sum())
            .unwrap_or(0.0)
    }

    /// The measurement count of the histogram `name` over the points matching `filter` (0 if none).
    pub fn histogram_count(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.metric(name)
            .map(|m| m.histogram_points(filter).map(|p| p.count).sum())
            .unwrap_or(0)
    }

    /// The value of the sum (counter) `name` added up over the points matching `filter` (0 if none).
    pub fn counter_value(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.metric(name)
            .filter(|m| matches!(m.data, MetricData::Sum { .. }))
            .map(|m| m.number_points(filter).map(|p| p.value).sum())
            .unwrap_or(0.0)
    }

    /// The value of the gauge `name` for the first point matching `filter`, if any.
    pub fn gauge_value(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.metric(name)
            .filter(|m| matches!(m.data, MetricData::Gauge { .. }))
            .and_then(|m| m.number_points(filter).next())
            .map(|p| p.value)
    }

    /// What changed since `baseline`: sums and histograms are subtracted per attribute set
    /// (a series absent from the baseline counts from zero), gauges keep their current value.
    /// Series that did not change are left out, and so are metrics left without points.
    pub fn delta_since(&self, baseline: &MetricsSnapshot) -> MetricsSnapshot {
        let mut metrics = BTreeMap::new();
        for (name, current) in &self.metrics {
            let before = baseline.metrics.get(name);
            let data = match &current.data {
                MetricData::Histogram { points } => {
                    let points: Vec<HistogramPoint> = points
                        .iter()
                        .filter_map(|p| {
                            let base = before.and_then(|b| {
                                b.histogram_points(&[])
                                    .find(|q| q.attributes == p.attributes)
                            });
                            histogram_delta(p, base)
                        })
                        .collect();
                    (!points.is_empty()).then_some(MetricData::Histogram { points })
                }
                MetricData::Sum { points, monotonic } => {
                    let points: Vec<NumberPoint> = points
                        .iter()
                        .filter_map(|p| {
                            let base = before
                                .and_then(|b| {
                                    b.number_points(&[]).find(|q| q.attributes == p.attributes)
                                })
                                .map(|q| q.value);
                            match base {
                                Some(base) if base == p.value => None,
                                Some(base) => Some(NumberPoint {
                                    attributes: p.attributes.clone(),
                                    value: p.value - base,
                                }),
                                None => Some(p.clone()),
                            }
                        })
                        .collect();
                    (!points.is_empty()).then_some(MetricData::Sum {
                        points,
                        monotonic: *monotonic,
                    })
                }
                MetricData::Gauge { points } => Some(MetricData::Gauge {
                    points: points.clone(),
                }),
            };
            if let Some(data) = data {
                metrics.insert(
                    name.clone(),
                    CapturedMetric {
                        name: current.name.clone(),
                        unit: current.unit.clone(),
                        description: current.description.clone(),
                        data,
                    },
                );
            }
        }
        MetricsSnapshot { metrics }
    }
}

/// `f64` on the wire: a JSON number when finite, else `"NaN"`, `"inf"` or `"-inf"` (plain JSON
/// has no non-finite numbers; `serde_json` would write `null` and fail to read it back).
mod wire_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(f64),
        Text(String),
    }

    impl From<f64> for Wire {
        fn from(value: f64) -> Self {
            if value.is_finite() {
                Wire::Number(value)
            } else if value.is_nan() {
                Wire::Text("NaN".to_owned())
            } else if value > 0.0 {
                Wire::Text("inf".to_owned())
            } else {
                Wire::Text("-inf".to_owned())
            }
        }
    }

    impl Wire {
        fn value<E: serde::de::Error>(self) -> Result<f64, E> {
            match self {
                Wire::Number(v) => Ok(v),
                Wire::Text(text) => match text.as_str() {
                    "NaN" => Ok(f64::NAN),
                    "inf" => Ok(f64::INFINITY),
                    "-inf" => Ok(f64::NEG_INFINITY),
                    other => Err(E::custom(format!("not a number: {other:?}"))),
                },
            }
        }
    }

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        Wire::from(*value).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Wire::deserialize(deserializer)?.value()
    }

    pub mod vec {
        use super::Wire;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(values.iter().map(|v| Wire::from(*v)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Vec<f64>, D::Error> {
            Vec::<Wire>::deserialize(deserializer)?
                .into_iter()
                .map(Wire::value)
                .collect()
        }
    }
}

fn histogram_delta(
    current: &HistogramPoint,
    base: Option<&HistogramPoint>,
) -> Option<HistogramPoint> {
    let Some(base) = base else {
        return (current.count > 0).then(|| current.clone());
    };
    if current.count == base.count && current.sum == base.sum {
        return None;
    }
    let bucket_counts = if current.bucket_bounds == base.bucket_bounds
        && current.bucket_counts.len() == base.bucket_counts.len()
    {
        current
            .bucket_counts
            .iter()
            .zip(&base.bucket_counts)
            .map(|(c, b)| c.saturating_sub(*b))
            .collect()
    } else {
        current.bucket_counts.clone()
    };
    Some(HistogramPoint {
        attributes: current.attributes.clone(),
        count: current.count.saturating_sub(base.count),
        sum: current.sum - base.sum,
        bucket_bounds: current.bucket_bounds.clone(),
        bucket_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, AttrValue)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn hist(count: u64, sum: f64, buckets: Vec<u64>, kind: &str) -> HistogramPoint {
        HistogramPoint {
            attributes: attrs(&[("gen_ai.token.type", kind.into())]),
            count,
            sum,
            bucket_bounds: vec![1.0, 10.0],
            bucket_counts: buckets,
        }
    }

    fn snapshot(points: Vec<HistogramPoint>, counter: f64) -> MetricsSnapshot {
        let mut metrics = BTreeMap::new();
        metrics.insert(
            "h".to_owned(),
            CapturedMetric {
                name: "h".into(),
                unit: "{token}".into(),
                description: String::new(),
                data: MetricData::Histogram { points },
            },
        );
        metrics.insert(
            "c".to_owned(),
            CapturedMetric {
                name: "c".into(),
                unit: "1".into(),
                description: String::new(),
                data: MetricData::Sum {
                    points: vec![NumberPoint {
                        attributes: attrs(&[("status", 200i64.into())]),
                        value: counter,
                    }],
                    monotonic: true,
                },
            },
        );
        MetricsSnapshot { metrics }
    }

    #[test]
    fn delta_subtracts_per_series_and_drops_unchanged() {
        let base = snapshot(vec![hist(1, 5.0, vec![0, 1, 0], "input")], 2.0);
        let now = snapshot(
            vec![
                hist(3, 25.0, vec![0, 2, 1], "input"),
                hist(1, 7.0, vec![0, 1, 0], "output"),
            ],
            2.0,
        );
        let delta = now.delta_since(&base);
        assert_eq!(
            delta.histogram_sum("h", &[("gen_ai.token.type", "input")]),
            20.0
        );
        assert_eq!(
            delta.histogram_count("h", &[("gen_ai.token.type", "input")]),
            2
        );
        assert_eq!(
            delta.histogram_sum("h", &[("gen_ai.token.type", "output")]),
            7.0
        );
        assert_eq!(delta.histogram_sum("h", &[]), 27.0);
        let input = delta
            .metric("h")
            .and_then(|m| m.histogram_points(&[("gen_ai.token.type", "input")]).next())
            .map(|p| p.bucket_counts.clone());
        assert_eq!(input, Some(vec![0, 1, 1]));
        assert!(delta.metric("c").is_none(), "unchanged counter is left out");
        assert_eq!(delta.counter_value("c", &[]), 0.0);
    }

    #[test]
    fn values_round_trip_through_json_as_the_same_variant() {
        let values = [
            AttrValue::String("42".into()),
            AttrValue::Other("42".into()),
            AttrValue::I64(42),
            AttrValue::F64(42.0),
            AttrValue::Bool(true),
            AttrValue::Bytes(vec![1, 2]),
            AttrValue::I64Array(vec![1, 2]),
            AttrValue::StringArray(vec![]),
            AttrValue::F64Array(vec![]),
            AttrValue::F64Array(vec![f64::INFINITY, 0.5]),
            AttrValue::F64(f64::NEG_INFINITY),
        ];
        for value in values {
            let json = serde_json::to_string(&value).unwrap();
            let back: AttrValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back, value, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&AttrValue::from("m")).unwrap(),
            r#"{"string":"m"}"#
        );
        let nan: AttrValue =
            serde_json::from_str(&serde_json::to_string(&AttrValue::F64(f64::NAN)).unwrap())
                .unwrap();
        assert!(matches!(nan, AttrValue::F64(v) if v.is_nan()));
        let snapshot = snapshot(vec![hist(2, f64::NAN, vec![0, 1, 1], "input")], 3.0);
        let back: MetricsSnapshot =
            serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
        assert!(back.histogram_sum("h", &[]).is_nan());
        assert_eq!(back.counter_value("c", &[("status", "200")]), 3.0);
    }

    #[test]
    fn filters_compare_display_form() {
        let now = snapshot(vec![], 3.0);
        assert_eq!(now.counter_value("c", &[("status", "200")]), 3.0);
        assert_eq!(now.counter_value("c", &[("status", "500")]), 0.0);
        assert_eq!(now.counter_value("c", &[("missing", "x")]), 0.0);
        assert_eq!(
            AttrValue::StringArray(vec!["a".into(), "b".into()]).to_string(),
            "[a, b]"
        );
    }
}
