//! Where the stack's spans and metrics go: the process's global OpenTelemetry providers, looked
//! up at each use (the default), or providers handed in explicitly (tests, embedding).
//!
//! The global providers are looked up at use time on purpose: a tracer or instrument taken from
//! the global no-op provider stays a no-op forever, so caching one in a static created before a
//! test (or a host program) installs its providers would lose everything.

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::global::{self, BoxedTracer, ObjectSafeTracer};
use opentelemetry::metrics::{Histogram, Meter, MeterProvider, NoopMeterProvider};
use opentelemetry::trace::TracerProvider;
use opentelemetry::trace::noop::NoopTracerProvider;

use super::semconv;

/// The variable that opts in to recording message content on GenAI spans.
pub const CAPTURE_CONTENT_VAR: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// Where the stack emits its telemetry; cheap to clone. The default is [`Telemetry::global`].
#[derive(Clone, Default)]
pub struct Telemetry {
    explicit: Option<Arc<Explicit>>,
    capture_content: Option<bool>,
    disabled: bool,
}

struct Explicit {
    tracer: Arc<BoxedTracer>,
    meter: Meter,
    /// Built once: an instrument's builder allocates its name, description and buckets, and an
    /// SDK meter looks the instrument up by them, at every call.
    instruments: Instruments,
    /// False when the meter is a no-op: nothing needs metric attributes.
    records_metrics: bool,
    /// False when the tracer is a no-op: spans carry context only.
    records_spans: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field(
                "providers",
                &match (&self.explicit, self.disabled) {
                    (_, true) => "disabled",
                    (Some(_), false) => "explicit",
                    (None, false) => "global",
                },
            )
            .field("capture_content", &self.capture_content)
            .finish()
    }
}

/// The GenAI metric instruments.
#[derive(Clone)]
pub(crate) struct Instruments {
    /// `gen_ai.client.token.usage`.
    pub token_usage: Histogram<u64>,
    /// `gen_ai.client.operation.duration`.
    pub operation_duration: Histogram<f64>,
    /// `gen_ai.client.operation.time_to_first_chunk`.
    pub client_time_to_first_chunk: Histogram<f64>,
    /// `gen_ai.server.time_to_first_token`.
    pub server_time_to_first_token: Histogram<f64>,
}

impl Telemetry {
    /// Emit through `opentelemetry::global` (whatever providers the process installed, looked up
    /// at each operation). Message content is recorded when
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
    pub fn global() -> Self {
        Self::default()
    }

    /// Emit through these providers instead of the global ones.
    pub fn with_providers<T, M>(tracer_provider: &T, meter_provider: &M) -> Self
    where
        T: TracerProvider,
        T::Tracer: ObjectSafeTracer + Send + Sync + 'static,
        M: MeterProvider,
    {
        Self::explicit(
            Arc::new(BoxedTracer::new(Box::new(
                tracer_provider.tracer_with_scope(scope()),
            ))),
            meter_provider.meter_with_scope(scope()),
            true,
            true,
        )
    }

    /// The SDK providers that are set, and no-op ones for the signals that are not (what the
    /// `stack` binary uses: the same providers it installs globally, looked up once).
    pub fn with_sdk_providers(
        tracer_provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
        meter_provider: Option<&opentelemetry_sdk::metrics::SdkMeterProvider>,
    ) -> Self {
        let tracer: Arc<BoxedTracer> = Arc::new(BoxedTracer::new(match tracer_provider {
            Some(p) => Box::new(p.tracer_with_scope(scope())),
            None => Box::new(NoopTracerProvider::new().tracer_with_scope(scope())),
        }));
        let records_spans = tracer_provider.is_some();
        match meter_provider {
            Some(p) => Self::explicit(tracer, p.meter_with_scope(scope()), true, records_spans),
            None => Self::explicit(
                tracer,
                NoopMeterProvider::new().meter_with_scope(scope()),
                false,
                records_spans,
            ),
        }
    }

    fn explicit(
        tracer: Arc<BoxedTracer>,
        meter: Meter,
        records_metrics: bool,
        records_spans: bool,
    ) -> Self {
        Self {
            explicit: Some(Arc::new(Explicit {
                tracer,
                instruments: Instruments::of(&meter),
                meter,
                records_metrics,
                records_spans,
            })),
            capture_content: None,
            disabled: false,
        }
    }

    /// Emit nothing at all, whatever providers the process installed: no-op spans and metrics,
    /// and no `traceparent` sent to providers (e.g. a library-mode stack with telemetry off).
    pub fn disabled() -> Self {
        let mut telemetry = Self::with_sdk_providers(None, None);
        telemetry.disabled = true;
        telemetry
    }

    /// Whether metrics go anywhere (false only for explicit no-op meters: the global meter may
    /// be installed at any time).
    pub fn records_metrics(&self) -> bool {
        self.explicit.as_ref().is_none_or(|e| e.records_metrics)
    }

    /// Whether spans go anywhere (false only for an explicit no-op tracer).
    pub fn records_spans(&self) -> bool {
        self.explicit.as_ref().is_none_or(|e| e.records_spans)
    }

    /// Whether this is [`Telemetry::disabled`].
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Records message content (`gen_ai.input.messages`, `gen_ai.output.messages`) or not,
    /// whatever `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` says.
    pub fn with_capture_content(mut self, capture: bool) -> Self {
        self.capture_content = Some(capture);
        self
    }

    /// Whether message content is recorded.
    pub fn captures_content(&self) -> bool {
        if self.disabled {
            return false;
        }
        self.capture_content.unwrap_or_else(|| {
            std::env::var(CAPTURE_CONTENT_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        })
    }

    /// The tracer to start spans with.
    pub fn tracer(&self) -> Arc<BoxedTracer> {
        match &self.explicit {
            Some(e) => e.tracer.clone(),
            None => Arc::new(global::tracer_with_scope(scope())),
        }
    }

    /// The meter to record metrics with.
    pub fn meter(&self) -> Meter {
        match &self.explicit {
            Some(e) => e.meter.clone(),
            None => global::meter_with_scope(scope()),
        }
    }

    /// The GenAI instruments, with the names, units and bucket boundaries of the conventions.
    pub(crate) fn instruments(&self) -> Instruments {
        match &self.explicit {
            Some(e) => e.instruments.clone(),
            None => Instruments::of(&self.meter()),
        }
    }
}

impl Instruments {
    fn of(meter: &Meter) -> Self {
        Instruments {
            token_usage: meter
                .u64_histogram(semconv::METRIC_CLIENT_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used.")
                .with_boundaries(semconv::TOKEN_USAGE_BUCKETS.to_vec())
                .build(),
            operation_duration: meter
                .f64_histogram(semconv::METRIC_CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration.")
                .with_boundaries(semconv::CLIENT_DURATION_BUCKETS.to_vec())
                .build(),
            client_time_to_first_chunk: meter
                .f64_histogram(semconv::METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
                .with_unit("s")
                .with_description(
                    "Time to receive the first chunk, from when the request was issued.",
                )
                .with_boundaries(semconv::CLIENT_DURATION_BUCKETS.to_vec())
                .build(),
            server_time_to_first_token: meter
                .f64_histogram(semconv::METRIC_SERVER_TIME_TO_FIRST_TOKEN)
                .with_unit("s")
                .with_description("Time to generate first token for successful responses.")
                .with_boundaries(semconv::SERVER_TIME_TO_FIRST_TOKEN_BUCKETS.to_vec())
                .build(),
        }
    }
}

impl Telemetry {
    /// `mcp.client.operation.duration`, with the conventions' unit and bucket boundaries (built
    /// alone: an MCP message needs none of the GenAI instruments).
    pub(crate) fn mcp_operation_duration(&self) -> Histogram<f64> {
        self.meter()
            .f64_histogram(semconv::METRIC_MCP_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description(
                "The duration of the MCP request or notification as observed on the sender \
                 from the time it was sent until the response or ack is received.",
            )
            .with_boundaries(semconv::MCP_DURATION_BUCKETS.to_vec())
            .build()
    }
}

/// The instrumentation scope of the stack's own spans and metrics.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(semconv::SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}
