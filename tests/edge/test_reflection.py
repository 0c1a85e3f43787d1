"""Server reflection answers on grpc.reflection.v1 and v1alpha."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.edge.support import running_server


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async with running_server() as (_, port, _r), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


async def ask(
    channel: grpc.aio.Channel, version: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # v1 and v1alpha share the wire format, so the v1alpha classes serve for both.
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([request]), timeout=5)
    responses = [response async for response in call]
    assert len(responses) == 1
    return responses[0]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_lists_services(channel: grpc.aio.Channel, version: str) -> None:
    reply = await ask(channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in reply.list_services_response.service}
    assert {
        "orchid.v1.PlanService",
        "orchid.v1.OpsService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


@pytest.mark.parametrize("symbol", ["orchid.v1.PlanService", "grpc.reflection.v1.ServerReflection"])
async def test_reflection_v1_describes_symbols(channel: grpc.aio.Channel, symbol: str) -> None:
    reply = await ask(channel, "v1", reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    package, _, service = symbol.rpartition(".")
    assert any(f.package == package and service in {s.name for s in f.service} for f in files)
