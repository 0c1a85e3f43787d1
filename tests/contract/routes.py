"""The REST routes Orchid must expose, written as the product spec (seed) lists them.

Paths use the seed's `:param` form; `as_http_rule_path` turns them into the
google.api.http form (`{param}`).
"""

from __future__ import annotations

import re

# (service, rpc, verb, path): the seed's "HTTP API Endpoints" tables, in order.
SEED_ROUTES = [
    ("IntegrationService", "ListIntegrations", "GET", "/api/v1/integrations"),
    ("IntegrationService", "CreateIntegration", "POST", "/api/v1/integrations"),
    ("IntegrationService", "GetIntegration", "GET", "/api/v1/integrations/:id"),
    ("IntegrationService", "UpdateIntegration", "PUT", "/api/v1/integrations/:id"),
    ("IntegrationService", "DeleteIntegration", "DELETE", "/api/v1/integrations/:id"),
    ("ConfigService", "ListConfigs", "GET", "/api/v1/configs"),
    ("ConfigService", "CreateConfig", "POST", "/api/v1/configs"),
    ("ConfigService", "GetConfig", "GET", "/api/v1/configs/:id"),
    ("ConfigService", "UpdateConfig", "PUT", "/api/v1/configs/:id"),
    ("ConfigService", "DeleteConfig", "DELETE", "/api/v1/configs/:id"),
    ("ConfigService", "EnableConfig", "POST", "/api/v1/configs/:id/enable"),
    ("ConfigService", "DisableConfig", "POST", "/api/v1/configs/:id/disable"),
    ("AuthFlowService", "ListAuthFlows", "GET", "/api/v1/auth-flows"),
    ("AuthFlowService", "CreateAuthFlow", "POST", "/api/v1/auth-flows"),
    ("AuthFlowService", "GetAuthFlow", "GET", "/api/v1/auth-flows/:id"),
    ("AuthFlowService", "UpdateAuthFlow", "PUT", "/api/v1/auth-flows/:id"),
    ("AuthFlowService", "DeleteAuthFlow", "DELETE", "/api/v1/auth-flows/:id"),
    ("PlanService", "ListPlans", "GET", "/api/v1/plans"),
    ("PlanService", "CreatePlan", "POST", "/api/v1/plans"),
    ("PlanService", "GetPlan", "GET", "/api/v1/plans/:key"),
    ("PlanService", "UpdatePlan", "PUT", "/api/v1/plans/:key"),
    ("PlanService", "DeletePlan", "DELETE", "/api/v1/plans/:key"),
    ("PlanService", "SetPlanEnabled", "PATCH", "/api/v1/plans/:key/enabled"),
    ("PlanService", "TriggerPlan", "POST", "/api/v1/plans/:key/trigger"),
    ("ExecutionService", "ListExecutions", "GET", "/api/v1/executions"),
    ("ExecutionService", "GetExecution", "GET", "/api/v1/executions/:id"),
    ("ExecutionService", "ListExecutionChildren", "GET", "/api/v1/executions/:id/children"),
    ("StatisticsService", "ListStatistics", "GET", "/api/v1/statistics"),
    ("StatisticsService", "GetStatistic", "GET", "/api/v1/statistics/:plan_key/:config_id"),
    ("DlqService", "ListDlqEntries", "GET", "/api/v1/dlq"),
    ("DlqService", "GetDlqStats", "GET", "/api/v1/dlq/stats"),
    ("DlqService", "GetDlqEntry", "GET", "/api/v1/dlq/:id"),
    ("DlqService", "RetryDlqEntry", "POST", "/api/v1/dlq/:id/retry"),
    ("DlqService", "DeleteDlqEntry", "DELETE", "/api/v1/dlq/:id"),
    ("OpsService", "Health", "GET", "/health"),
    ("OpsService", "Health", "GET", "/healthz"),
    ("OpsService", "Live", "GET", "/live"),
    # GET /metrics is not an RPC: the server exposes Prometheus metrics on its own listener.
]

# Routes the contract adds to the seed's tables.
EXTRA_ROUTES = [
    ("ExecutionService", "CancelExecution", "POST", "/api/v1/executions/:id/cancel"),
    ("RateLimitService", "ListRateLimitStates", "GET", "/api/v1/rate-limits/states"),
    ("RateLimitService", "ListRateLimitHistory", "GET", "/api/v1/rate-limits/history"),
    ("RateLimitService", "ListRateLimitAlerts", "GET", "/api/v1/rate-limits/alerts"),
]

SERVICES = [
    "IntegrationService",
    "ConfigService",
    "AuthFlowService",
    "PlanService",
    "ExecutionService",
    "StatisticsService",
    "DlqService",
    "RateLimitService",
    "OpsService",
]

# Services whose routes need no bearer token.
PUBLIC_SERVICES = {"OpsService"}


def as_http_rule_path(seed_path: str) -> str:
    """Turn the seed's `/plans/:key` into the google.api.http template `/plans/{key}`."""
    return re.sub(r":([a-z_]+)", r"{\1}", seed_path)


def expected_routes() -> set[tuple[str, str, str, str]]:
    """Return (service, rpc, verb, path) for every route, in google.api.http form."""
    return {(s, r, v, as_http_rule_path(p)) for s, r, v, p in SEED_ROUTES + EXTRA_ROUTES}
