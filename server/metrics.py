"""Prometheus metrics of the gRPC server: requests and latency by service, method and status code,
served on their own HTTP port (SERVER_METRICS_PORT), not through Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

from server.rpc_wrap import wrap_handler

__all__ = ["REQUESTS", "REQUEST_SECONDS", "MetricsInterceptor", "MetricsServer", "start_metrics_server"]

_LABELS = ("service", "method", "code")

REQUESTS = Counter(
    "orchid_grpc_requests",
    "gRPC requests handled, by service, method and status code.",
    _LABELS,
)
REQUEST_SECONDS = Histogram(
    "orchid_grpc_request_duration_seconds",
    "Time to handle a gRPC request, by service, method and status code.",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Count and time every RPC the server has a handler for (unknown methods are not counted:
    their names come from the client and would make label values unbounded)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        return wrap_handler(handler, functools.partial(_observe, service, method))


@contextlib.asynccontextmanager
async def _observe(
    service: str, method: str, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[None]:
    started = time.perf_counter()
    code = grpc.StatusCode.UNKNOWN
    try:
        yield
        code = _code_of(context, default=grpc.StatusCode.OK)
    except grpc.aio.AbortError:
        code = _code_of(context, default=grpc.StatusCode.UNKNOWN)
        raise
    except asyncio.CancelledError:
        code = grpc.StatusCode.CANCELLED
        raise
    finally:
        labels = (service, method, code.name)
        REQUESTS.labels(*labels).inc()
        REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


def _code_of(context: grpc.aio.ServicerContext[Any, Any], *, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpcio versions report the raw integer
        return next((c for c in grpc.StatusCode if c.value[0] == code), default)
    return default


@dataclass
class MetricsServer:
    """The /metrics HTTP endpoint; ``port`` is the bound one (useful when asked for port 0)."""

    port: int
    _server: WSGIServer

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(
    port: int, *, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``registry`` on http://addr:port/metrics in a daemon thread."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(port=int(server.server_port), _server=server)
