"""Build the grpc.aio server: resource servicers, health, reflection and interceptors, bound to a port.

    server, port = create_server(
        (plans_pb2_grpc.add_PlanServiceServicer_to_server, PlanService(sessions)),
        (ops_pb2_grpc.add_OpsServiceServicer_to_server, OpsServicer(reporter)),
        listen="127.0.0.1:0", interceptors=default_interceptors(settings.auth), health=reporter,
    )
    await server.start()

create_server only builds and binds, so tests use port 0 and read the bound port back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2_grpc

from server.auth import TenantAuthInterceptor
from server.health import HealthReporter
from server.metrics import MetricsInterceptor
from server.reflection import enable_reflection
from settings.model import AuthSettings

__all__ = ["MAX_MESSAGE_BYTES", "Registration", "create_server", "default_interceptors"]

# The same 1 MiB limit Envoy puts on REST bodies; a larger gRPC message is RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 1024 * 1024

AddToServer = Callable[[Any, grpc.aio.Server], None]
# One resource service: the generated add_XServicer_to_server function and the servicer.
Registration = tuple[AddToServer, object]


def create_server(
    *services: Registration,
    listen: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
    health: HealthReporter | None = None,
    reflection: bool = True,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[grpc.aio.Server, int]:
    """A server with ``services`` registered, bound to ``listen``; returns it and the bound port.

    With ``health``, grpc.health.v1 is served and every registered service is reported with
    the server's overall status. Reflection (v1 and v1alpha) lists everything registered.
    """
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port fails instead of sharing it
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    names = _register(server, services)
    if health is not None:
        health.track(names)
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
        names.append(_health_service_name())
    if reflection:
        enable_reflection(names, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot bind the gRPC server to {listen}")
    return server, port


def default_interceptors(
    auth: AuthSettings,
    *,
    tracing: grpc.aio.ServerInterceptor | None = None,  # type: ignore[type-arg]
) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """Outermost first: the trace span, then metrics (so auth failures are counted), then auth."""
    chain: list[grpc.aio.ServerInterceptor] = [] if tracing is None else [tracing]  # type: ignore[type-arg]
    chain += [MetricsInterceptor(), TenantAuthInterceptor.from_settings(auth)]
    return chain


def _health_service_name() -> str:
    return str(grpc_health.SERVICE_NAME)


class _RecordingServer:
    """Passes registrations through to the server and remembers the service names, so callers
    hand over (add_fn, servicer) pairs and never repeat a name by hand."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        handlers = tuple(handlers)
        for handler in handlers:
            name = getattr(handler, "service_name", None)
            if callable(name) and name() not in self.names:
                self.names.append(name())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        if service_name not in self.names:
            self.names.append(service_name)
        self._server.add_registered_method_handlers(service_name, handlers)  # type: ignore[attr-defined]


def _register(server: grpc.aio.Server, services: Iterable[Registration]) -> list[str]:
    recorder = _RecordingServer(server)
    for add_to_server, servicer in services:
        add_to_server(servicer, recorder)  # type: ignore[arg-type]
    return recorder.names
