"""Repositories against real PostgreSQL: tenancy, errors, secrets at rest, pagination, executions."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import (
    DuplicateResourceError,
    InvalidArgumentError,
    PreconditionFailedError,
    ResourceNotFoundError,
    TenantMismatchError,
)
from store import (
    auth_flows_repo,
    configs_repo,
    dlq_repo,
    executions_repo,
    integrations_repo,
    plans_repo,
    statistics_repo,
)
from store.crypto import SecretBox, generate_key
from store.records import (
    AuthFlowInput,
    ConfigInput,
    ErrorInfo,
    IntegrationInput,
    NewDlqEntry,
    NewExecution,
    PlanInput,
    RunTotals,
)
from store.rekey import rotate_secrets
from store.schema_validation import MASK
from store.tables import AuthFlow, Config

A, B = "tenant-a", "tenant-b"
SCHEMA = {
    "type": "object",
    "required": ["base_url"],
    "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string", "secret": True}},
}
Sessions = async_sessionmaker[AsyncSession]


async def _integration(
    sessions: Sessions, tenant: str = A, name: str = "salesforce"
) -> integrations_repo.IntegrationRecord:  # type: ignore[name-defined]
    async with sessions.begin() as s:
        return await integrations_repo.create(s, tenant, IntegrationInput(name=name, config_schema=SCHEMA))


async def test_same_name_in_two_tenants_and_duplicates(sessions: Sessions) -> None:
    a = await _integration(sessions, A)
    b = await _integration(sessions, B)
    assert a.id != b.id and a.tenant_id == A and b.tenant_id == B
    with pytest.raises(DuplicateResourceError):
        await _integration(sessions, A)
    async with sessions.begin() as s:
        page = await integrations_repo.list_page(s, B)
    assert [i.id for i in page.items] == [b.id]


async def test_cross_tenant_is_denied_and_missing_is_not_found(sessions: Sessions) -> None:
    a = await _integration(sessions, A)
    async with sessions.begin() as s:
        with pytest.raises(TenantMismatchError) as denied:
            await integrations_repo.get(s, B, a.id)
        assert "salesforce" not in denied.value.message
        with pytest.raises(ResourceNotFoundError):
            await integrations_repo.get(s, B, uuid4())
        with pytest.raises(TenantMismatchError):
            await integrations_repo.update_integration(s, B, a.id, IntegrationInput(name="x"))
        with pytest.raises(TenantMismatchError):
            await integrations_repo.delete(s, B, a.id)
        with pytest.raises(TenantMismatchError):
            await configs_repo.create(
                s,
                B,
                ConfigInput(integration_id=a.id, name="p", values={"base_url": "u"}),
                secrets=SecretBox([]),
            )
    async with sessions.begin() as s:
        assert (await integrations_repo.get(s, A, a.id)).name == "salesforce"


async def test_integration_delete_is_refused_while_in_use(sessions: Sessions, secrets: SecretBox) -> None:
    a = await _integration(sessions)
    async with sessions.begin() as s:
        config = await configs_repo.create(
            s, A, ConfigInput(integration_id=a.id, name="prod", values={"base_url": "u"}), secrets=secrets
        )
        await plans_repo.create(
            s, A, PlanInput(key="p1", definition={"key": "p1"}, integration_name="salesforce")
        )
    async with sessions.begin() as s:
        with pytest.raises(PreconditionFailedError, match="1 config"):
            await integrations_repo.delete(s, A, a.id)
    async with sessions.begin() as s:
        with pytest.raises(PreconditionFailedError, match="renamed"):
            await integrations_repo.update_integration(s, A, a.id, IntegrationInput(name="other"))
    async with sessions.begin() as s:
        await plans_repo.delete(s, A, "p1")
        await configs_repo.delete(s, A, config.id)
        await integrations_repo.delete(s, A, a.id)
        with pytest.raises(ResourceNotFoundError):
            await integrations_repo.get(s, A, a.id)


async def test_config_secrets_are_encrypted_at_rest_and_masked(
    sessions: Sessions, secrets: SecretBox
) -> None:
    a = await _integration(sessions)
    async with sessions.begin() as s:
        created = await configs_repo.create(
            s,
            A,
            ConfigInput(
                integration_id=a.id, name="prod", values={"base_url": "https://x", "api_key": "sk-live-123"}
            ),
            secrets=secrets,
        )
    assert created.values == {"base_url": "https://x", "api_key": MASK}
    async with sessions() as s:
        raw = await s.scalar(text("SELECT values::text FROM configs WHERE id = :id"), {"id": created.id})
    assert raw is not None and "sk-live-123" not in raw and "$enc" in raw
    # Sending the mask back keeps the secret; the worker sees plaintext.
    async with sessions.begin() as s:
        updated = await configs_repo.update_config(
            s,
            A,
            created.id,
            ConfigInput(integration_id=None, name="prod", values={"base_url": "https://y", "api_key": MASK}),
            secrets=secrets,
        )
        assert updated.values["api_key"] == MASK and updated.enabled is True
        run = await configs_repo.load_for_run(s, A, created.id, secrets=secrets)
    assert run.values == {"base_url": "https://y", "api_key": "sk-live-123"}
    async with sessions.begin() as s:
        with pytest.raises(InvalidArgumentError, match="values: 'base_url' is a required property"):
            await configs_repo.update_config(
                s, A, created.id, ConfigInput(integration_id=None, name="prod", values={}), secrets=secrets
            )


async def test_secret_without_key_is_refused(sessions: Sessions) -> None:
    a = await _integration(sessions)
    async with sessions.begin() as s:
        with pytest.raises(PreconditionFailedError, match="SECRETS_ENCRYPTION_KEYS"):
            await configs_repo.create(
                s,
                A,
                ConfigInput(integration_id=a.id, name="p", values={"base_url": "u", "api_key": "k"}),
                secrets=SecretBox([]),
            )
        # Without secrets in the values, no key is needed.
        await configs_repo.create(
            s, A, ConfigInput(integration_id=a.id, name="p", values={"base_url": "u"}), secrets=SecretBox([])
        )


async def test_key_rotation_reencrypts_everything(sessions: Sessions) -> None:
    old, new = generate_key(), generate_key()
    a = await _integration(sessions)
    async with sessions.begin() as s:
        config = await configs_repo.create(
            s,
            A,
            ConfigInput(integration_id=a.id, name="p", values={"base_url": "u", "api_key": "k1"}),
            secrets=SecretBox([old]),
        )
        flow = await auth_flows_repo.create(
            s,
            A,
            AuthFlowInput(
                integration_id=a.id,
                name="oauth",
                type="oauth2_refresh_token",
                definition={"token_url": "https://t", "client_secret": "cs", "refresh_token": "rt"},
            ),
            secrets=SecretBox([old]),
        )
    async with sessions.begin() as s:
        assert await rotate_secrets(s, SecretBox([new, old])) == 3
    only_new = SecretBox([new])
    async with sessions.begin() as s:
        assert (await configs_repo.load_for_run(s, A, config.id, secrets=only_new)).values["api_key"] == "k1"
        run_flow = await auth_flows_repo.load_for_run(s, A, flow.id, secrets=only_new)
        assert run_flow.definition["client_secret"] == "cs"
        raw = await s.scalar(select(AuthFlow.definition).where(AuthFlow.id == flow.id))
        assert raw is not None and "cs" not in str(raw.get("client_secret"))


async def test_auth_flow_masking_and_token_compare_and_swap(sessions: Sessions, secrets: SecretBox) -> None:
    a = await _integration(sessions)
    async with sessions.begin() as s:
        flow = await auth_flows_repo.create(
            s,
            A,
            AuthFlowInput(
                integration_id=a.id,
                name="oauth",
                type="oauth2_refresh_token",
                definition={"token_url": "https://t", "client_secret": "cs", "refresh_token": "rt0"},
            ),
            secrets=secrets,
        )
    assert flow.definition["client_secret"] == MASK and flow.definition["refresh_token"] == MASK
    async with sessions.begin() as s:
        state = await auth_flows_repo.get_token_state(s, A, flow.id, secrets=secrets)
        assert state.refresh_token == "rt0"
        assert await auth_flows_repo.swap_refresh_token(
            s, A, flow.id, expected_version=state.version, refresh_token="rt1", secrets=secrets
        )
        assert not await auth_flows_repo.swap_refresh_token(
            s, A, flow.id, expected_version=state.version, refresh_token="rt2", secrets=secrets
        )
        assert (await auth_flows_repo.get_token_state(s, A, flow.id, secrets=secrets)).refresh_token == "rt1"
    async with sessions.begin() as s:
        config = await configs_repo.create(
            s,
            A,
            ConfigInput(integration_id=a.id, name="p", values={"base_url": "u"}, auth_flow_id=flow.id),
            secrets=secrets,
        )
        with pytest.raises(PreconditionFailedError, match="still used"):
            await auth_flows_repo.delete(s, A, flow.id)
    async with sessions.begin() as s:
        await configs_repo.delete(s, A, config.id)
        await auth_flows_repo.delete(s, A, flow.id)
    async with sessions() as s:
        assert await s.scalar(select(Config.id)) is None


async def test_keyset_pagination(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        for i in range(7):
            await integrations_repo.create(s, A, IntegrationInput(name=f"int-{i}"))
        await integrations_repo.create(s, B, IntegrationInput(name="int-b"))
    names: list[str] = []
    token = ""
    while True:
        async with sessions.begin() as s:
            page = await integrations_repo.list_page(s, A, size=3, token=token)
        names += [i.name for i in page.items]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"int-{i}" for i in range(7)]


async def test_plan_keys_are_per_tenant_and_definition_roundtrips(sessions: Sessions) -> None:
    await _integration(sessions, A)
    document = {"key": "p", "integration": "salesforce", "step": {"url": "https://x"}}
    async with sessions.begin() as s:
        plan = await plans_repo.create(
            s, A, PlanInput(key="p", definition=document, integration_name="salesforce")
        )
        await plans_repo.create(s, B, PlanInput(key="q", definition={"key": "q"}))
    async with sessions.begin() as s:
        with pytest.raises(PreconditionFailedError, match="no integration named"):
            await plans_repo.create(s, B, PlanInput(key="r", definition={}, integration_name="salesforce"))
    async with sessions.begin() as s:
        with pytest.raises(DuplicateResourceError):
            await plans_repo.create(s, A, PlanInput(key="p", definition={}))
    async with sessions.begin() as s:
        assert (await plans_repo.get(s, A, "p")).definition == document
        with pytest.raises(TenantMismatchError):
            await plans_repo.get(s, B, "p")
        enabled = await plans_repo.set_enabled(s, A, "p", True)
        assert enabled.enabled and enabled.definition["enabled"] is True
        assert plan.integration_id is not None


async def test_trigger_idempotency_and_execution_lifecycle(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        plan = await plans_repo.create(s, A, PlanInput(key="p", definition={"key": "p"}))
        first, dedup1 = await executions_repo.create_manual_runs(s, A, plan, [None], idempotency_key="k1")
        again, dedup2 = await executions_repo.create_manual_runs(s, A, plan, [None], idempotency_key="k1")
    assert not dedup1 and dedup2 and [e.id for e in first] == [e.id for e in again]
    execution = first[0]
    assert execution.status == "queued" and execution.trigger == "manual"
    async with sessions.begin() as s:
        other, created = await executions_repo.create(
            s, B, NewExecution(plan_key="p", trigger="manual", idempotency_key="k1")
        )
        assert created and other.tenant_id == B
        running = await executions_repo.start_attempt(s, A, execution.id, worker="w1")
        assert running is not None and running.status == "running" and running.attempts[0].worker == "w1"
        again_running = await executions_repo.start_attempt(s, A, execution.id, worker="w2")
        assert again_running is not None and [a.outcome for a in again_running.attempts] == [
            "worker_lost",
            "running",
        ]
        await executions_repo.finish_attempt(s, A, execution.id, 2, "success")
        assert await executions_repo.finish(s, A, execution.id, status="success", stats={"requests": 3})
        assert not await executions_repo.finish(s, A, execution.id, status="failed")
        with pytest.raises(PreconditionFailedError):
            await executions_repo.cancel(s, A, execution.id)
        with pytest.raises(TenantMismatchError):
            await executions_repo.get(s, B, execution.id)
        done = await executions_repo.get(s, A, execution.id)
    assert done.status == "success" and done.stats == {"requests": 3} and done.attempt_count == 2


async def test_cancel_cascades_to_children(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        parent, _ = await executions_repo.create(s, A, NewExecution(plan_key="p", trigger="manual"))
        child, _ = await executions_repo.create(
            s, A, NewExecution(plan_key="p", trigger="parent", parent_id=parent.id)
        )
        cancelled = await executions_repo.cancel(s, A, parent.id, "stop")
        assert cancelled.status == "cancelled" and cancelled.error == ErrorInfo(
            code="cancelled", message="stop"
        )
        assert (await executions_repo.get(s, A, child.id)).status == "cancelled"
        assert await executions_repo.start_attempt(s, A, child.id, worker="w") is None
        children = await executions_repo.list_children(s, A, parent.id)
        top = await executions_repo.list_page(s, A)
    assert [c.id for c in children.items] == [child.id]
    assert [e.id for e in top.items] == [parent.id]


async def test_statistics_increment_atomically_and_context(sessions: Sessions) -> None:
    config_id = uuid4()
    async with sessions.begin() as s:
        await statistics_repo.record_run(
            s, A, "p", config_id, RunTotals(status="success", api_calls=3, records=10, bytes=100)
        )
        stat = await statistics_repo.record_run(
            s,
            A,
            "p",
            config_id,
            RunTotals(status="failed", api_calls=2, error=ErrorInfo(code="timeout", message="t")),
        )
    assert (stat.success_count, stat.failure_count, stat.api_calls, stat.records) == (1, 1, 5, 10)
    assert stat.last_status == "failed" and stat.last_error == ErrorInfo(code="timeout", message="t")
    async with sessions.begin() as s:
        with pytest.raises(TenantMismatchError):
            await statistics_repo.get(s, B, "p", config_id)
        with pytest.raises(ResourceNotFoundError):
            await statistics_repo.get(s, A, "p", uuid4())
        assert (await statistics_repo.list_page(s, B, "p")).items == ()


async def test_dlq_entries_are_tenant_scoped(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        execution, _ = await executions_repo.create(s, A, NewExecution(plan_key="p", trigger="schedule"))
        entry = await dlq_repo.add(
            s, A, NewDlqEntry(execution_id=execution.id, plan_key="p", reason="timeout")
        )
        with pytest.raises(TenantMismatchError):
            await dlq_repo.get(s, B, entry.id)
        assert (await dlq_repo.stats(s, B)).total == 0
        assert (await dlq_repo.stats(s, None)).total == 1
        stats = await dlq_repo.stats(s, A)
        assert stats.by_reason == (("timeout", 1),) and stats.by_plan == (("p", 1),)
        await dlq_repo.mark_retried(s, A, entry.id, execution.id)
        with pytest.raises(ResourceNotFoundError):
            await dlq_repo.get(s, A, entry.id)
