"""Wrap a grpc.aio method handler so code runs around every call, whatever its streaming shape.

Interceptors (auth, metrics) use this instead of relying on the interceptor and the handler
sharing a task: the wrapper runs inside the handler itself, so a contextvar it sets is the one
the servicer reads, and an exception or abort the servicer raises passes through it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

__all__ = ["Around", "wrap_handler"]

# Called once per RPC with the servicer context; its body runs around the servicer's behavior.
Around = Callable[[grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]]


def wrap_handler(handler: grpc.RpcMethodHandler[Any, Any], around: Around) -> grpc.RpcMethodHandler[Any, Any]:
    """Return a handler of the same kind whose behavior runs inside ``around(context)``.

    Servicers are async: coroutine methods (unary responses, or streams written with
    ``context.write``) and async generators (streams that yield) are both supported.
    """
    if handler.request_streaming and handler.response_streaming:
        kind, make = "stream_stream", grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        kind, make = "stream_unary", grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        kind, make = "unary_stream", grpc.unary_stream_rpc_method_handler
    else:
        kind, make = "unary_unary", grpc.unary_unary_rpc_method_handler
    behavior = getattr(handler, kind)
    return make(
        _wrap_behavior(behavior, around),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap_behavior(behavior: Callable[..., Any], around: Around) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with around(context):
                async for response in behavior(request, context):
                    yield response

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with around(context):
            result = behavior(request, context)
            if inspect.isawaitable(result):
                result = await result
            return result

    return call
