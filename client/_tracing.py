"""W3C trace context for client calls: a CLIENT span per call, its context in the request headers.

Off unless the application has installed an OpenTelemetry tracer provider; then each call costs one check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import propagate, trace

_tracer = trace.get_tracer("corral.client")


def enabled() -> bool:
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextmanager
def client_span(path: str, url: str, headers: dict[str, str]) -> Iterator[None]:
    """Trace one call to `url + path`, injecting the span's context into `headers`."""
    with _tracer.start_as_current_span(f"POST {path}", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("http.request.method", "POST")
        span.set_attribute("url.full", url + path)
        propagate.inject(headers)
        yield
