"""The settings dataclasses. Names of environment variables follow the spec's "Configuration"."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from settings.parse import SettingsError, parse_bool, parse_duration, parse_int, parse_list

__all__ = [
    "AuthSettings",
    "DatabaseSettings",
    "EgressSettings",
    "ExecutionLimits",
    "KafkaSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "SchedulerSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "WorkerSettings",
]

Env = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    host: str = "localhost"
    port: int = 5432
    user: str = "postgres"
    password: str = field(default="postgres", repr=False)
    name: str = "orchid"
    max_open_conns: int = 25
    max_idle_conns: int = 5
    command_timeout_s: float = 30.0
    # DATABASE_URL wins over the DB_* parts when set (the spec's .env example uses it).
    url_override: str = field(default="", repr=False)

    @property
    def dsn(self) -> str:
        """The SQLAlchemy asyncpg URL."""
        if self.url_override:
            url = self.url_override
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+asyncpg://" + url[len(prefix) :]
            return url
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql+asyncpg://{auth}@{self.host}:{self.port}/{self.name}"

    @classmethod
    def from_env(cls, env: Env) -> DatabaseSettings:
        return cls(
            host=env.get("DB_HOST", "localhost"),
            port=parse_int("DB_PORT", env.get("DB_PORT", "5432"), minimum=1),
            user=env.get("DB_USER_NAME", "postgres"),
            password=env.get("DB_PASSWORD", "postgres"),
            name=env.get("DB_NAME", "orchid"),
            max_open_conns=parse_int("DB_MAX_OPEN_CONNS", env.get("DB_MAX_OPEN_CONNS", "25"), minimum=1),
            max_idle_conns=parse_int("DB_MAX_IDLE_CONNS", env.get("DB_MAX_IDLE_CONNS", "5"), minimum=0),
            command_timeout_s=parse_duration("DB_COMMAND_TIMEOUT", env.get("DB_COMMAND_TIMEOUT", "30s")),
            url_override=env.get("DATABASE_URL", ""),
        )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    host: str = "localhost"
    port: int = 6379
    password: str = field(default="", repr=False)
    db: int = 0
    job_queue: str = "orchid:jobs"
    consumer_group: str = "orchid-workers"
    consumer_name: str = ""
    socket_timeout_s: float = 10.0

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        return cls(
            host=env.get("REDIS_HOST", "localhost"),
            port=parse_int("REDIS_PORT", env.get("REDIS_PORT", "6379"), minimum=1),
            password=env.get("REDIS_PASSWORD", ""),
            db=parse_int("REDIS_DB", env.get("REDIS_DB", "0"), minimum=0),
            job_queue=env.get("REDIS_STREAMS_JOB_QUEUE", "orchid:jobs"),
            consumer_group=env.get("REDIS_STREAMS_CONSUMER_GROUP", "orchid-workers"),
            consumer_name=env.get("REDIS_STREAMS_CONSUMER_NAME", ""),
            socket_timeout_s=parse_duration("REDIS_SOCKET_TIMEOUT", env.get("REDIS_SOCKET_TIMEOUT", "10s")),
        )


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    brokers: tuple[str, ...] = ("localhost:9092",)
    response_topic: str = "api-responses"
    error_topic: str = "api-errors"
    events_topic: str = "execution-events"
    rate_limit_alerts_topic: str = "rate-limit-alerts"
    # Kafka's default message.max.bytes; responses above it are split into numbered parts.
    max_message_bytes: int = 1_000_000
    # Tansu's memory engine (used by `make dev` and tests) rejects InitProducerId, so
    # devstack turns this off; production brokers keep the idempotent producer.
    enable_idempotence: bool = True
    # Emits are pipelined and acknowledged at the execution's flush, so a few ms of linger only
    # batches pages into fewer produce requests (about 7x fewer over 2,000 pages here).
    linger_ms: int = 5
    request_timeout_ms: int = 30_000

    @property
    def bootstrap(self) -> str:
        return ",".join(self.brokers)

    @classmethod
    def from_env(cls, env: Env) -> KafkaSettings:
        return cls(
            brokers=parse_list(env.get("KAFKA_BROKERS", "localhost:9092")),
            response_topic=env.get("KAFKA_RESPONSE_TOPIC", "api-responses"),
            error_topic=env.get("KAFKA_ERROR_TOPIC", "api-errors"),
            events_topic=env.get("KAFKA_EVENTS_TOPIC", "execution-events"),
            rate_limit_alerts_topic=env.get("KAFKA_RATE_LIMIT_ALERTS_TOPIC", "rate-limit-alerts"),
            max_message_bytes=parse_int(
                "KAFKA_MAX_MESSAGE_BYTES", env.get("KAFKA_MAX_MESSAGE_BYTES", "1000000"), minimum=1024
            ),
            enable_idempotence=parse_bool(
                "KAFKA_ENABLE_IDEMPOTENCE", env.get("KAFKA_ENABLE_IDEMPOTENCE", "true")
            ),
            linger_ms=parse_int("KAFKA_LINGER_MS", env.get("KAFKA_LINGER_MS", "5"), minimum=0),
            request_timeout_ms=parse_int(
                "KAFKA_REQUEST_TIMEOUT_MS", env.get("KAFKA_REQUEST_TIMEOUT_MS", "30000"), minimum=1
            ),
        )


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    enabled: bool = True
    poll_interval_s: float = 30.0
    metrics_port: int = 9102

    @classmethod
    def from_env(cls, env: Env) -> SchedulerSettings:
        return cls(
            enabled=parse_bool("SCHEDULER_ENABLED", env.get("SCHEDULER_ENABLED", "true")),
            poll_interval_s=parse_duration(
                "SCHEDULER_POLL_INTERVAL", env.get("SCHEDULER_POLL_INTERVAL", "30s")
            ),
            metrics_port=parse_int("SCHEDULER_METRICS_PORT", env.get("SCHEDULER_METRICS_PORT", "9102")),
        )


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    max_execution_time_s: float = 300.0
    max_loops: int = 1000
    max_nesting_depth: int = 5
    default_concurrency: int = 50
    max_retry_backoff_s: float = 60.0
    max_response_size: int = 10 * 1024 * 1024
    max_request_body_size: int = 5 * 1024 * 1024
    max_context_field_bytes: int = 64 * 1024
    max_context_total_bytes: int = 1024 * 1024
    rate_limit_max_wait_s: float = 60.0
    http_connect_timeout_s: float = 10.0
    http_read_timeout_s: float = 30.0
    http_max_connections: int = 200

    @classmethod
    def from_env(cls, env: Env) -> ExecutionLimits:
        def dur(name: str, default: str) -> float:
            return parse_duration(name, env.get(name, default))

        def num(name: str, default: str) -> int:
            return parse_int(name, env.get(name, default), minimum=1)

        return cls(
            max_execution_time_s=dur("MAX_EXECUTION_TIME", "5m"),
            max_loops=num("MAX_LOOPS", "1000"),
            max_nesting_depth=num("MAX_NESTING_DEPTH", "5"),
            default_concurrency=num("DEFAULT_CONCURRENCY", "50"),
            max_retry_backoff_s=dur("MAX_RETRY_BACKOFF", "60s"),
            max_response_size=num("MAX_RESPONSE_SIZE", str(10 * 1024 * 1024)),
            max_request_body_size=num("MAX_REQUEST_BODY_SIZE", str(5 * 1024 * 1024)),
            rate_limit_max_wait_s=dur("RATE_LIMIT_MAX_WAIT", "60s"),
            http_connect_timeout_s=dur("HTTP_CONNECT_TIMEOUT", "10s"),
            http_read_timeout_s=dur("HTTP_READ_TIMEOUT", "30s"),
            http_max_connections=num("HTTP_MAX_CONNECTIONS", "200"),
        )


@dataclass(frozen=True, slots=True)
class EgressSettings:
    """Which destinations a tenant's plan may reach. Loopback, private, link-local and multicast
    addresses are refused unless listed here (hosts, IPs or CIDR ranges)."""

    allowlist: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> EgressSettings:
        return cls(allowlist=parse_list(env.get("EGRESS_ALLOWLIST", "")))


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    otlp_enabled: bool = False
    otlp_endpoint: str = "localhost:4317"
    otlp_protocol: str = "grpc"
    log_level: str = "info"
    pretty_logs: bool = False
    service_name: str = "orchid"

    @classmethod
    def from_env(cls, env: Env) -> ObservabilitySettings:
        protocol = env.get("OTLP_PROTOCOL", "grpc")
        if protocol not in {"grpc", "http"}:
            raise SettingsError(f"OTLP_PROTOCOL: {protocol!r} must be grpc or http")
        return cls(
            otlp_enabled=parse_bool("OTLP_ENABLED", env.get("OTLP_ENABLED", "false")),
            otlp_endpoint=env.get("OTLP_ENDPOINT", "localhost:4317"),
            otlp_protocol=protocol,
            log_level=env.get("LOG_LEVEL", "info"),
            pretty_logs=parse_bool("PRETTY_LOGS", env.get("PRETTY_LOGS", "false")),
            service_name=env.get("OTEL_SERVICE_NAME", "orchid"),
        )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification. Envoy verifies tokens in front of the server; AUTH_ENABLED=true makes the
    server verify them as well (for deployments without Envoy)."""

    enabled: bool = False
    issuer_url: str = ""
    client_id: str = ""  # the expected audience
    jwks_uri: str = ""
    jwks_file: str = ""
    tenant_header: str = "x-orchid-tenant-id"
    roles_header: str = "x-orchid-roles"
    tenant_claim: str = "tenant_id"
    roles_claim: str = "roles"
    admin_role: str = "orchid:admin"
    jwks_cache_s: float = 300.0
    leeway_s: float = 30.0

    @classmethod
    def from_env(cls, env: Env) -> AuthSettings:
        return cls(
            enabled=parse_bool("AUTH_ENABLED", env.get("AUTH_ENABLED", "false")),
            issuer_url=env.get("AUTH_ISSUER_URL", ""),
            client_id=env.get("AUTH_CLIENT_ID", ""),
            jwks_uri=env.get("AUTH_JWKS_URI", ""),
            jwks_file=env.get("AUTH_JWKS_FILE", ""),
            tenant_header=env.get("AUTH_TENANT_HEADER", "x-orchid-tenant-id").lower(),
            roles_header=env.get("AUTH_ROLES_HEADER", "x-orchid-roles").lower(),
            tenant_claim=env.get("AUTH_TENANT_CLAIM", "tenant_id"),
            roles_claim=env.get("AUTH_ROLES_CLAIM", "roles"),
            jwks_cache_s=parse_duration("AUTH_JWKS_CACHE", env.get("AUTH_JWKS_CACHE", "5m")),
            leeway_s=parse_duration("AUTH_CLOCK_SKEW", env.get("AUTH_CLOCK_SKEW", "30s")),
            admin_role=env.get("AUTH_ADMIN_ROLE", "orchid:admin"),
        )


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    """Keys for config fields the integration's schema marks secret. The first key encrypts;
    every key decrypts, so a new key is rotated in by putting it first (see README)."""

    keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Env) -> SecretsSettings:
        return cls(keys=parse_list(env.get("SECRETS_ENCRYPTION_KEYS", "")))


@dataclass(frozen=True, slots=True)
class ServerSettings:
    # The gRPC server listens on loopback by default: only Envoy should reach it.
    grpc_listen: str = "127.0.0.1:50051"
    metrics_port: int = 9101
    shutdown_grace_s: float = 10.0
    run_migrations: bool = False

    @classmethod
    def from_env(cls, env: Env) -> ServerSettings:
        return cls(
            grpc_listen=env.get("GRPC_LISTEN", "127.0.0.1:" + env.get("PORT", "50051")),
            metrics_port=parse_int("SERVER_METRICS_PORT", env.get("SERVER_METRICS_PORT", "9101")),
            shutdown_grace_s=parse_duration("SHUTDOWN_GRACE", env.get("SHUTDOWN_GRACE", "10s")),
            run_migrations=parse_bool("RUN_MIGRATIONS", env.get("RUN_MIGRATIONS", "false")),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 16
    shutdown_grace_s: float = 30.0
    visibility_timeout_s: float = 60.0
    max_attempts: int = 3
    metrics_port: int = 9103

    @classmethod
    def from_env(cls, env: Env) -> WorkerSettings:
        return cls(
            concurrency=parse_int("WORKER_CONCURRENCY", env.get("WORKER_CONCURRENCY", "16"), minimum=1),
            shutdown_grace_s=parse_duration("WORKER_SHUTDOWN_GRACE", env.get("WORKER_SHUTDOWN_GRACE", "30s")),
            visibility_timeout_s=parse_duration(
                "WORKER_VISIBILITY_TIMEOUT", env.get("WORKER_VISIBILITY_TIMEOUT", "60s")
            ),
            max_attempts=parse_int("JOB_MAX_ATTEMPTS", env.get("JOB_MAX_ATTEMPTS", "3"), minimum=1),
            metrics_port=parse_int("WORKER_METRICS_PORT", env.get("WORKER_METRICS_PORT", "9103")),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    limits: ExecutionLimits = field(default_factory=ExecutionLimits)
    egress: EgressSettings = field(default_factory=EgressSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        """Read every setting once; a bad value raises SettingsError naming the variable."""
        source: Env = os.environ if env is None else env
        return cls(
            database=DatabaseSettings.from_env(source),
            redis=RedisSettings.from_env(source),
            kafka=KafkaSettings.from_env(source),
            scheduler=SchedulerSettings.from_env(source),
            limits=ExecutionLimits.from_env(source),
            egress=EgressSettings.from_env(source),
            observability=ObservabilitySettings.from_env(source),
            auth=AuthSettings.from_env(source),
            secrets=SecretsSettings.from_env(source),
            server=ServerSettings.from_env(source),
            worker=WorkerSettings.from_env(source),
        )
