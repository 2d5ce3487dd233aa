//! OTLP protobuf messages -> model types. Both backends go through here: the OTLP receiver
//! decodes the messages off the wire, the in-memory backend converts the SDK's data into the
//! same messages first (with `opentelemetry-proto`'s own transforms).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, NumberDataPoint, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};

use super::model::{AttrValue, Attributes, CapturedEvent, CapturedSpan, SpanKind, SpanStatus};

/// Converts OTLP attributes; a key repeated later wins, a key without value is skipped.
pub(crate) fn attributes(kvs: &[KeyValue]) -> Attributes {
    kvs.iter()
        .filter_map(|kv| {
            kv.value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .map(|v| (kv.key.clone(), any_value(v)))
        })
        .collect()
}

fn any_value(value: &any_value::Value) -> AttrValue {
    use any_value::Value;
    match value {
        Value::StringValue(s) => AttrValue::String(s.clone()),
        Value::BoolValue(b) => AttrValue::Bool(*b),
        Value::IntValue(i) => AttrValue::I64(*i),
        Value::DoubleValue(d) => AttrValue::F64(*d),
        Value::BytesValue(b) => AttrValue::Bytes(b.clone()),
        Value::ArrayValue(array) => array_value(&array.values),
        other => AttrValue::Other(format!("{other:?}")),
    }
}

fn array_value(values: &[AnyValue]) -> AttrValue {
    use any_value::Value;
    let inner: Vec<Option<&Value>> = values.iter().map(|v| v.value.as_ref()).collect();
    fn all<'a, T>(
        inner: &[Option<&'a Value>],
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        inner.iter().map(|v| v.and_then(&f)).collect()
    }
    if let Some(v) = all(&inner, |v| match v {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }) {
        return AttrValue::StringArray(v);
    }
    if let Some(v) = all(&inner, |v| match v {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }) {
        return AttrValue::I64Array(v);
    }
    if let Some(v) = all(&inner, |v| match v {
        Value::DoubleValue(d) => Some(*d),
        _ => None,
    }) {
        return AttrValue::F64Array(v);
    }
    if let Some(v) = all(&inner, |v| match v {
        Value::BoolValue(b) => Some(*b),
        _ => None,
    }) {
        return AttrValue::BoolArray(v);
    }
    AttrValue::Other(format!("{values:?}"))
}

fn kind(raw: i32) -> SpanKind {
    match span::SpanKind::try_from(raw) {
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Converts one OTLP span, given its resource's and scope's data.
pub(crate) fn span(
    span: &Span,
    resource: &Attributes,
    scope_name: &str,
    scope_version: &str,
) -> CapturedSpan {
    let status = match &span.status {
        Some(s) => match status::StatusCode::try_from(s.code) {
            Ok(status::StatusCode::Ok) => SpanStatus::Ok,
            Ok(status::StatusCode::Error) => SpanStatus::Error(s.message.clone()),
            _ => SpanStatus::Unset,
        },
        None => SpanStatus::Unset,
    };
    CapturedSpan {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()
            && span.parent_span_id.iter().any(|b| *b != 0))
        .then(|| hex::encode(&span.parent_span_id)),
        name: span.name.clone(),
        kind: kind(span.kind),
        attributes: attributes(&span.attributes),
        status,
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        events: span
            .events
            .iter()
            .map(|e| CapturedEvent {
                name: e.name.clone(),
                time_unix_nano: e.time_unix_nano,
                attributes: attributes(&e.attributes),
            })
            .collect(),
        resource: resource.clone(),
        scope_name: scope_name.to_owned(),
        scope_version: (!scope_version.is_empty()).then(|| scope_version.to_owned()),
    }
}

/// Converts every span of an OTLP trace export.
pub(crate) fn trace_request(request: &ExportTraceServiceRequest) -> Vec<CapturedSpan> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            let (name, version) = scope_spans
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or(("", ""));
            out.extend(
                scope_spans
                    .spans
                    .iter()
                    .map(|s| span(s, &resource, name, version)),
            );
        }
    }
    out
}

/// How a series reports its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Temporality {
    /// Each export carries the total since `start`.
    Cumulative,
    /// Each export carries the change since the previous export.
    Delta,
    /// A gauge: each export carries the current value.
    LastValue,
}

/// The kind of instrument a series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Histogram,
    Sum { monotonic: bool },
    Gauge,
}

/// The value of one series in one export.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SeriesValue {
    Number(f64),
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
        counts: Vec<u64>,
    },
}

impl SeriesValue {
    /// `self + other`; histograms with different bounds cannot be added, `other` wins.
    pub(crate) fn add(&self, other: &SeriesValue) -> SeriesValue {
        match (self, other) {
            (SeriesValue::Number(a), SeriesValue::Number(b)) => SeriesValue::Number(a + b),
            (
                SeriesValue::Histogram {
                    count: c1,
                    sum: s1,
                    bounds: b1,
                    counts: k1,
                },
                SeriesValue::Histogram {
                    count: c2,
                    sum: s2,
                    bounds: b2,
                    counts: k2,
                },
            ) if b1 == b2 && k1.len() == k2.len() => SeriesValue::Histogram {
                count: c1 + c2,
                sum: s1 + s2,
                bounds: b1.clone(),
                counts: k1.iter().zip(k2).map(|(a, b)| a + b).collect(),
            },
            _ => other.clone(),
        }
    }
}

/// One data point of one export, with everything needed to file it.
#[derive(Debug, Clone)]
pub(crate) struct SeriesUpdate {
    /// Identifies the emitting resource (canonical text of its attributes).
    pub resource_key: String,
    /// The instrumentation scope name.
    pub scope: String,
    pub name: String,
    pub unit: String,
    pub description: String,
    pub kind: Kind,
    pub temporality: Temporality,
    pub attributes: Attributes,
    pub start_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: SeriesValue,
}

fn temporality(raw: i32) -> Temporality {
    match AggregationTemporality::try_from(raw) {
        Ok(AggregationTemporality::Delta) => Temporality::Delta,
        _ => Temporality::Cumulative,
    }
}

fn number(value: Option<&number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

/// A canonical text for an attribute set, used as a map key.
pub(crate) fn attributes_key(attributes: &Attributes) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k:?}={v:?};"))
        .collect()
}

/// Converts every data point of an OTLP metrics export (summaries are skipped).
pub(crate) fn metrics_request(request: &ExportMetricsServiceRequest) -> Vec<SeriesUpdate> {
    let mut out = Vec::new();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let resource_key = attributes_key(&resource);
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_metrics
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for m in &scope_metrics.metrics {
                let update =
                    |kind, temporality, attrs: &[KeyValue], start, time, value| SeriesUpdate {
                        resource_key: resource_key.clone(),
                        scope: scope.clone(),
                        name: m.name.clone(),
                        unit: m.unit.clone(),
                        description: m.description.clone(),
                        kind,
                        temporality,
                        attributes: attributes(attrs),
                        start_unix_nano: start,
                        time_unix_nano: time,
                        value,
                    };
                let number_update = |kind, temporality, p: &NumberDataPoint| {
                    update(
                        kind,
                        temporality,
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        SeriesValue::Number(number(p.value.as_ref())),
                    )
                };
                match &m.data {
                    Some(metric::Data::Sum(sum)) => {
                        let kind = Kind::Sum {
                            monotonic: sum.is_monotonic,
                        };
                        let t = temporality(sum.aggregation_temporality);
                        out.extend(sum.data_points.iter().map(|p| number_update(kind, t, p)));
                    }
                    Some(metric::Data::Gauge(gauge)) => out.extend(
                        gauge
                            .data_points
                            .iter()
                            .map(|p| number_update(Kind::Gauge, Temporality::LastValue, p)),
                    ),
                    Some(metric::Data::Histogram(h)) => {
                        let t = temporality(h.aggregation_temporality);
                        out.extend(h.data_points.iter().map(|p| {
                            update(
                                Kind::Histogram,
                                t,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                SeriesValue::Histogram {
                                    count: p.count,
                                    sum: p.sum.unwrap_or(0.0),
                                    bounds: p.explicit_bounds.clone(),
                                    counts: p.bucket_counts.clone(),
                                },
                            )
                        }));
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        let t = temporality(h.aggregation_temporality);
                        out.extend(h.data_points.iter().map(|p| {
                            update(
                                Kind::Histogram,
                                t,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                SeriesValue::Histogram {
                                    count: p.count,
                                    sum: p.sum.unwrap_or(0.0),
                                    bounds: Vec::new(),
                                    counts: Vec::new(),
                                },
                            )
                        }));
                    }
                    Some(metric::Data::Summary(_)) | None => {}
                }
            }
        }
    }
    out
}
