//! SDK setup for the `stack` binary, configured the standard way from `OTEL_*` variables.
//!
//! Only the CLI calls [`init_from_env`]; a program that embeds the stack as a library installs its
//! own providers (or none) and the stack emits through them.
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED=true` | nothing at all: no provider, no exporter, no propagator |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL for both signals (`/v1/traces`, `/v1/metrics` appended) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT` | full URL for one signal |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (and `..._TRACES_PROTOCOL` / `..._METRICS_PROTOCOL`) | `http/protobuf` (default) or `http/json`; `grpc` is refused: not built in |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` (and per signal) | export timeout in ms (default here 3000, shorter than the spec's 10 s) |
//! | `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` | comma-separated; `none` turns a signal off; `otlp` turns it on even without an endpoint (then `http://localhost:4318`); for metrics, `prometheus` serves a Prometheus scrape endpoint (and, named without `otlp`, exports no OTLP metrics) |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST`, `OTEL_EXPORTER_PROMETHEUS_PORT` | where the scrape endpoint listens: `http://HOST:PORT/metrics` (default `localhost:9464`, the spec's) |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (service name default `llama-stack`) |
//! | `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL` | read by the SDK's batch span processor and periodic reader |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_COMPRESSION` | read by the OTLP exporter |
//!
//! With no endpoint and no `otlp` exporter named, no exporter is built: no thread, no connection,
//! no retry. Otherwise spans go through a batch span processor and metrics through a periodic
//! reader, each exporting from its own thread with the blocking HTTP client, never on a request's
//! path or a tokio worker; a dead endpoint only costs those threads their export timeouts.
//! The W3C trace-context propagator is installed globally unless the SDK is disabled.

use std::sync::mpsc;
use std::time::Duration;

use opentelemetry::global;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "llama-stack";
/// Export timeout when no `OTEL_EXPORTER_OTLP_*TIMEOUT` variable sets one.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// The OTLP/HTTP endpoint used when an exporter is asked for by `OTEL_*_EXPORTER=otlp` alone.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
/// How long [`TelemetryGuard::shutdown`] waits for the last exports.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why telemetry could not be set up as the environment asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// gRPC export was asked for; this build only has OTLP over HTTP.
    #[error(
        "{var}=grpc: OTLP over gRPC is not built into this stack; use http/protobuf (port 4318, \
         the default) or http/json"
    )]
    GrpcNotBuilt {
        /// The variable that asked for it.
        var: String,
    },
    /// The Prometheus scrape endpoint could not be set up.
    #[error("cannot set up the Prometheus exporter: {0}")]
    Prometheus(String),
    /// A protocol value that is not `http/protobuf`, `http/json` or `grpc`.
    #[error("{var}={value}: unknown OTLP protocol; use http/protobuf or http/json")]
    UnknownProtocol {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// An exporter value other than `otlp`, `none` (and for metrics `prometheus`).
    #[error("{var}={value}: unsupported exporter; use otlp or none (for metrics also prometheus)")]
    UnknownExporter {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// The OTLP exporter refused its configuration (e.g. an invalid endpoint URL).
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What it said.
        message: String,
    },
}

/// OTLP/HTTP encodings this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`.
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl OtlpProtocol {
    fn sdk(self) -> Protocol {
        match self {
            Self::HttpProtobuf => Protocol::HttpBinary,
            Self::HttpJson => Protocol::HttpJson,
        }
    }
}

/// Where and how one signal is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    /// The full URL posted to (e.g. `http://127.0.0.1:4318/v1/traces`).
    pub endpoint: String,
    /// The encoding.
    pub protocol: OtlpProtocol,
    /// The export timeout.
    pub timeout: Duration,
}

impl ExportTarget {
    /// `builder` (an OTLP/HTTP exporter builder of either signal) sending here.
    fn configure<B: WithExportConfig>(&self, builder: B) -> B {
        builder
            .with_endpoint(self.endpoint.clone())
            .with_protocol(self.protocol.sdk())
            .with_timeout(self.timeout)
    }
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// `OTEL_SDK_DISABLED=true`: set up nothing.
    pub disabled: bool,
    /// Span export, if any.
    pub traces: Option<ExportTarget>,
    /// Metric export, if any.
    pub metrics: Option<ExportTarget>,
    /// The Prometheus scrape endpoint, if asked for (`OTEL_METRICS_EXPORTER=prometheus`).
    pub prometheus: Option<PrometheusTarget>,
}

/// Where the Prometheus scrape endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusTarget {
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` (default `localhost`).
    pub host: String,
    /// `OTEL_EXPORTER_PROMETHEUS_PORT` (default 9464).
    pub port: u16,
}

struct Signal {
    path: &'static str,
    endpoint_var: &'static str,
    protocol_var: &'static str,
    timeout_var: &'static str,
    exporter_var: &'static str,
}

const TRACES: Signal = Signal {
    path: "/v1/traces",
    endpoint_var: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol_var: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    timeout_var: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    exporter_var: "OTEL_TRACES_EXPORTER",
};

const METRICS: Signal = Signal {
    path: "/v1/metrics",
    endpoint_var: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    protocol_var: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    timeout_var: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    exporter_var: "OTEL_METRICS_EXPORTER",
};

impl OtelConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SetupError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SetupError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self {
                disabled: true,
                traces: None,
                metrics: None,
                prometheus: None,
            });
        }
        let prometheus = exporters(&METRICS, &get)?
            .is_some_and(|names| names.iter().any(|n| n == "prometheus"))
            .then(|| -> Result<PrometheusTarget, SetupError> {
                let port = match get("OTEL_EXPORTER_PROMETHEUS_PORT") {
                    None => 9464,
                    Some(p) => p.parse::<u16>().map_err(|_| SetupError::UnknownExporter {
                        var: "OTEL_EXPORTER_PROMETHEUS_PORT".into(),
                        value: format!("{p} (not a port number)"),
                    })?,
                };
                Ok(PrometheusTarget {
                    host: get("OTEL_EXPORTER_PROMETHEUS_HOST")
                        .unwrap_or_else(|| "localhost".into()),
                    port,
                })
            })
            .transpose()?;
        Ok(Self {
            disabled: false,
            traces: target(&TRACES, &get)?,
            metrics: target(&METRICS, &get)?,
            prometheus,
        })
    }

    /// Whether anything is exported.
    pub fn exports(&self) -> bool {
        self.traces.is_some() || self.metrics.is_some() || self.prometheus.is_some()
    }
}

/// The exporters a signal's `OTEL_*_EXPORTER` names (lowercase), `None` when it is unset. Traces
/// take `otlp` and `none`; metrics also `prometheus`.
fn exporters(
    signal: &Signal,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Vec<String>>, SetupError> {
    let Some(value) = get(signal.exporter_var) else {
        return Ok(None);
    };
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let known =
        |n: &str| n == "otlp" || n == "none" || (n == "prometheus" && signal.path == METRICS.path);
    if let Some(bad) = names.iter().find(|n| !known(n)) {
        return Err(SetupError::UnknownExporter {
            var: signal.exporter_var.to_owned(),
            value: bad.clone(),
        });
    }
    Ok(Some(names))
}

fn target(
    signal: &Signal,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ExportTarget>, SetupError> {
    let forced = match exporters(signal, get)? {
        None => false,
        Some(names) if names.iter().any(|n| n == "otlp") => true,
        // `none`, or only `prometheus`: no OTLP export for this signal.
        Some(_) => return Ok(None),
    };
    let endpoint = match (get(signal.endpoint_var), get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(url), _) => url,
        (None, Some(base)) => format!("{}{}", base.trim_end_matches('/'), signal.path),
        (None, None) if forced => format!("{DEFAULT_ENDPOINT}{}", signal.path),
        (None, None) => return Ok(None),
    };
    let (var, value) = match get(signal.protocol_var) {
        Some(v) => (signal.protocol_var, v),
        None => match get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
            None => ("", "http/protobuf".to_owned()),
        },
    };
    let protocol = match value.to_ascii_lowercase().as_str() {
        "http/protobuf" => OtlpProtocol::HttpProtobuf,
        "http/json" => OtlpProtocol::HttpJson,
        "grpc" => {
            return Err(SetupError::GrpcNotBuilt {
                var: var.to_owned(),
            });
        }
        _ => {
            return Err(SetupError::UnknownProtocol {
                var: var.to_owned(),
                value,
            });
        }
    };
    let timeout = get(signal.timeout_var)
        .or_else(|| get("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_EXPORT_TIMEOUT);
    Ok(Some(ExportTarget {
        endpoint,
        protocol,
        timeout,
    }))
}

/// The SDK providers built for a config; shut them down with [`TelemetryGuard::shutdown`].
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    prometheus: Option<(PrometheusTarget, prometheus::Registry)>,
}

impl TelemetryGuard {
    /// Builds the providers `config` asks for, without installing them: a tracer provider with a
    /// batch span processor and a meter provider with a periodic reader, each only when its
    /// signal is exported.
    pub fn build(config: &OtelConfig) -> Result<Self, SetupError> {
        if config.disabled || !config.exports() {
            return Ok(Self::default());
        }
        let resource = resource();
        let tracer_provider = match &config.traces {
            Some(target) => {
                let exporter = target
                    .configure(opentelemetry_otlp::SpanExporter::builder().with_http())
                    .build()
                    .map_err(|e| SetupError::Exporter {
                        signal: "traces",
                        message: e.to_string(),
                    })?;
                Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource.clone())
                        .build(),
                )
            }
            None => None,
        };
        let mut prometheus = None;
        let meter_provider = if config.metrics.is_some() || config.prometheus.is_some() {
            let mut builder = SdkMeterProvider::builder().with_resource(resource);
            if let Some(target) = &config.metrics {
                let exporter = target
                    .configure(opentelemetry_otlp::MetricExporter::builder().with_http())
                    .build()
                    .map_err(|e| SetupError::Exporter {
                        signal: "metrics",
                        message: e.to_string(),
                    })?;
                builder = builder.with_reader(PeriodicReader::builder(exporter).build());
            }
            if let Some(target) = &config.prometheus {
                let registry = prometheus::Registry::new();
                let reader = opentelemetry_prometheus::exporter()
                    .with_registry(registry.clone())
                    .build()
                    .map_err(|e| SetupError::Prometheus(e.to_string()))?;
                builder = builder.with_reader(reader);
                prometheus = Some((target.clone(), registry));
            }
            Some(builder.build())
        } else {
            None
        };
        Ok(Self {
            tracer_provider,
            meter_provider,
            prometheus,
        })
    }

    /// Where the Prometheus scrape endpoint should listen and the registry it serves, when
    /// `OTEL_METRICS_EXPORTER` names `prometheus` (the caller serves it: [`prometheus_text`]).
    pub fn prometheus(&self) -> Option<(&PrometheusTarget, &prometheus::Registry)> {
        self.prometheus.as_ref().map(|(t, r)| (t, r))
    }

    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Whether metrics are exported.
    pub fn exports_metrics(&self) -> bool {
        self.meter_provider.is_some()
    }

    /// Where the stack should send its own spans and metrics: these providers, held directly
    /// (no global lookup a request), with no-op ones for signals not exported.
    pub fn telemetry(&self) -> super::Telemetry {
        super::Telemetry::with_sdk_providers(
            self.tracer_provider.as_ref(),
            self.meter_provider.as_ref(),
        )
    }

    /// Installs the built providers as the global ones (signals not exported keep the global
    /// no-op provider).
    pub fn install(&self) {
        if let Some(p) = &self.tracer_provider {
            global::set_tracer_provider(p.clone());
        }
        if let Some(p) = &self.meter_provider {
            global::set_meter_provider(p.clone());
        }
    }

    /// Flushes and shuts the providers down, waiting at most [`SHUTDOWN_TIMEOUT`]. Runs on its
    /// own thread, so it may be called from async code; the providers (and the exporters'
    /// blocking HTTP clients) are dropped there too.
    pub fn shutdown(mut self) {
        let tracer_provider = self.tracer_provider.take();
        let meter_provider = self.meter_provider.take();
        if tracer_provider.is_none() && meter_provider.is_none() {
            return;
        }
        // One thread per signal, so the two final exports wait in parallel, not one after the
        // other.
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let mut pending = 0;
        if let Some(p) = tracer_provider {
            pending += spawn_shutdown("traces", &tx, move || {
                p.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            });
        }
        if let Some(p) = meter_provider {
            pending += spawn_shutdown("metrics", &tx, move || {
                p.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            });
        }
        drop(tx);
        let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT + Duration::from_millis(500);
        for _ in 0..pending {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("telemetry shutdown: {e}"),
                Err(_) => {
                    tracing::warn!(
                        "telemetry was not flushed within {SHUTDOWN_TIMEOUT:?}; giving up on the rest"
                    );
                    return;
                }
            }
        }
        tracing::debug!("telemetry shut down");
    }
}

/// Runs the shutdown of signal `name` on a thread of its own, which reports to `tx`; 1 when the
/// thread started, 0 when it could not.
fn spawn_shutdown(
    name: &'static str,
    tx: &mpsc::Sender<Result<(), String>>,
    shutdown: impl FnOnce() -> OTelSdkResult + Send + 'static,
) -> usize {
    let tx = tx.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("otel-shutdown-{name}"))
        .spawn(move || {
            let _ = tx.send(shutdown().map_err(|e| format!("{name}: {e}")));
        });
    match spawned {
        Ok(_) => 1,
        Err(e) => {
            tracing::warn!("cannot flush {name}: {e}");
            0
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.tracer_provider.is_some() || self.meter_provider.is_some() {
            std::mem::take(self).shutdown();
        }
    }
}

/// The resource: the SDK's detectors (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, SDK
/// attributes), `OTEL_SERVICE_NAME` winning over a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`,
/// and `llama-stack` when neither names the service.
fn resource() -> Resource {
    let named = |v: &str| !v.trim().is_empty();
    let service_name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|v| named(v));
    let in_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|attrs| {
        attrs.split(',').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, _)| k.trim() == "service.name")
        })
    });
    let builder = Resource::builder();
    match service_name {
        Some(name) => builder.with_service_name(name).build(),
        None if in_attributes => builder.build(),
        None => builder.with_service_name(DEFAULT_SERVICE_NAME).build(),
    }
}

/// The Prometheus text exposition of `registry` (what `GET /metrics` answers).
pub fn prometheus_text(registry: &prometheus::Registry) -> Result<String, String> {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .map_err(|e| e.to_string())?;
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// Sets up telemetry for the `stack` binary from the environment: builds the providers
/// ([`TelemetryGuard::build`]), installs them and the W3C trace-context propagator globally
/// (nothing at all with `OTEL_SDK_DISABLED=true`). Keep the guard and call
/// [`TelemetryGuard::shutdown`] on exit to flush.
pub fn init_from_env() -> Result<TelemetryGuard, SetupError> {
    let config = OtelConfig::from_env()?;
    if config.disabled {
        tracing::info!("OpenTelemetry disabled (OTEL_SDK_DISABLED=true)");
        return Ok(TelemetryGuard::default());
    }
    let guard = TelemetryGuard::build(&config)?;
    guard.install();
    global::set_text_map_propagator(TraceContextPropagator::new());
    for (signal, target) in [("traces", &config.traces), ("metrics", &config.metrics)] {
        match target {
            Some(t) => tracing::info!(
                "exporting {signal} over OTLP ({:?}) to {} (timeout {:?})",
                t.protocol,
                t.endpoint,
                t.timeout
            ),
            None => tracing::debug!("not exporting {signal} (no OTLP endpoint configured)"),
        }
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<OtelConfig, SetupError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelConfig::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_configured_builds_no_exporter() {
        let c = config(&[
            ("OTEL_SERVICE_NAME", "x"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c,
            OtelConfig {
                disabled: false,
                traces: None,
                metrics: None,
                prometheus: None,
            }
        );
        let guard = TelemetryGuard::build(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(!guard.exports_traces() && !guard.exports_metrics());
    }

    #[test]
    fn prometheus_is_a_metrics_exporter_beside_or_instead_of_otlp() {
        let only =
            config(&[("OTEL_METRICS_EXPORTER", "prometheus")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only.metrics, None);
        assert_eq!(
            only.prometheus,
            Some(PrometheusTarget {
                host: "localhost".into(),
                port: 9464
            })
        );
        let both = config(&[
            ("OTEL_METRICS_EXPORTER", "otlp, prometheus"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(both.metrics.is_some() && both.traces.is_some());
        assert_eq!(both.prometheus.as_ref().map(|p| p.port), Some(9999));
        let guard = TelemetryGuard::build(&both).unwrap_or_else(|e| panic!("{e}"));
        assert!(guard.exports_metrics() && guard.prometheus().is_some());
        for bad in [
            vec![("OTEL_TRACES_EXPORTER", "prometheus")],
            vec![
                ("OTEL_METRICS_EXPORTER", "prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", "high"),
            ],
            vec![("OTEL_METRICS_EXPORTER", "otlp,zipkin")],
        ] {
            assert!(config(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sdk_disabled_wins_over_everything() {
        let c = config(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.disabled && !c.exports());
        let guard = TelemetryGuard::build(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(!guard.exports_traces() && !guard.exports_metrics());
    }

    #[test]
    fn endpoints_follow_the_spec() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/custom"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.traces,
            Some(ExportTarget {
                endpoint: "http://127.0.0.1:4318/v1/traces".into(),
                protocol: OtlpProtocol::HttpProtobuf,
                timeout: Duration::from_millis(250),
            })
        );
        assert_eq!(
            c.metrics,
            Some(ExportTarget {
                endpoint: "http://m:1/custom".into(),
                protocol: OtlpProtocol::HttpJson,
                timeout: Duration::from_millis(250),
            })
        );
        let only_traces = config(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:2/v1/traces")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(only_traces.traces.is_some() && only_traces.metrics.is_none());
        assert_eq!(
            only_traces.traces.map(|t| t.timeout),
            Some(DEFAULT_EXPORT_TIMEOUT)
        );
        let none = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(none.traces.is_some() && none.metrics.is_none());
        let forced = config(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            forced.traces.map(|t| t.endpoint),
            Some("http://localhost:4318/v1/traces".to_owned())
        );
    }

    #[test]
    fn grpc_and_unknown_values_are_refused_clearly() {
        let err = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("gRPC is not built into this stack"),
            "{err}"
        );
        assert!(matches!(
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
            ]),
            Err(SetupError::UnknownProtocol { .. })
        ));
        assert!(matches!(
            config(&[("OTEL_TRACES_EXPORTER", "zipkin")]),
            Err(SetupError::UnknownExporter { .. })
        ));
    }

    /// A configured endpoint builds the exporters; nothing is sent until spans exist, and the
    /// shutdown of an idle pipeline pointed at a dead port returns promptly.
    #[test]
    fn configured_endpoint_builds_exporters_and_shuts_down_quickly() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")])
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = TelemetryGuard::build(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(guard.exports_traces() && guard.exports_metrics());
        let started = std::time::Instant::now();
        guard.shutdown();
        assert!(
            started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
