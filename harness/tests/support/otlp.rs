//! OTLP/HTTP exporters (the real `opentelemetry-otlp` ones) pointed at a receiver, and a
//! runtime to wait in: shared by the harness's unit tests (`telemetry::otlp_tests`, through
//! `#[path]`) and its integration tests (`tests/server.rs`).

#![allow(dead_code)] // each user takes what it needs

use std::time::Duration;

use opentelemetry_otlp::{
    Compression, MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::SdkTracerProvider;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("otlp-receiver-test")
        .build()
}

pub fn tracer_provider(endpoint: &str, protocol: Protocol, gzip: bool) -> SdkTracerProvider {
    let mut builder = SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(Duration::from_secs(5));
    if gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    let exporter = builder.build().expect("span exporter");
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build()
}

/// A meter provider exporting to the receiver at `endpoint` every 100 ms.
pub fn meter_provider(endpoint: &str, temporality: Temporality) -> SdkMeterProvider {
    meter_provider_every(endpoint, temporality, Duration::from_millis(100))
}

/// A meter provider exporting to the receiver at `endpoint` every `interval` (and on
/// `force_flush`).
pub fn meter_provider_every(
    endpoint: &str,
    temporality: Temporality,
    interval: Duration,
) -> SdkMeterProvider {
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/metrics"))
        .with_temporality(temporality)
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("metric exporter");
    SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(interval)
                .build(),
        )
        .with_resource(resource())
        .build()
}
