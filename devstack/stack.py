"""The whole local topology in one object: servers from pip binaries, then Orchid's processes.

start(): PostgreSQL, Redis, Kafka (Tansu), migrations, ``python -m server``, Envoy, the demo API
(``python -m mockapi --scenario demo``), ``python -m scheduler`` and ``python -m worker``.
stop(): worker first (SIGTERM: it drains), then scheduler, demo API, server, Envoy and the servers.

``make dev`` runs it in the foreground (devstack/__main__.py); end-to-end tests and the benchmark
start it on free ports. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from cryptography.fernet import Fernet

from devstack.envoy import Envoy
from devstack.jwt import DEV_AUDIENCE, DEV_ISSUER, DevKeyring
from devstack.process import ManagedProcess, ServiceStartError, free_port, port_open, wait_until
from devstack.servers import KafkaBroker, Postgres, Redis

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Ports:
    envoy: int
    grpc: int
    postgres: int
    redis: int
    kafka: int
    server_metrics: int
    envoy_admin: int
    demo_api: int
    worker_metrics: int
    scheduler_metrics: int

    @classmethod
    def fixed(cls) -> Ports:
        """Stable ports for `make dev`, so the README's commands work when pasted.

        ORCHID_DEV_PORT moves Envoy (the one port users type); ORCHID_DEV_<NAME>_PORT moves
        the others (GRPC, POSTGRES, REDIS, KAFKA, METRICS, ENVOY_ADMIN, DEMO, WORKER_METRICS,
        SCHEDULER_METRICS), e.g. for a second stack next to a running one."""
        return cls(
            envoy=_env_port("ORCHID_DEV_PORT", 8080),
            grpc=_env_port("ORCHID_DEV_GRPC_PORT", 50051),
            postgres=_env_port("ORCHID_DEV_POSTGRES_PORT", 55432),
            redis=_env_port("ORCHID_DEV_REDIS_PORT", 56379),
            kafka=_env_port("ORCHID_DEV_KAFKA_PORT", 59092),
            server_metrics=_env_port("ORCHID_DEV_METRICS_PORT", 9101),
            envoy_admin=_env_port("ORCHID_DEV_ENVOY_ADMIN_PORT", 9901),
            demo_api=_env_port("ORCHID_DEV_DEMO_PORT", 58080),
            worker_metrics=_env_port("ORCHID_DEV_WORKER_METRICS_PORT", 9103),
            scheduler_metrics=_env_port("ORCHID_DEV_SCHEDULER_METRICS_PORT", 9102),
        )

    @classmethod
    def free(cls) -> Ports:
        """One distinct free port each (free_port() alone may hand out the same one twice)."""
        ports: list[int] = []
        while len(ports) < len(fields(cls)):
            port = free_port()
            if port not in ports:
                ports.append(port)
        return cls(*ports)


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{name}={raw!r} is not a port number")
    return port


def _secret_key(root: Path) -> str:
    """A Fernet key kept with the dev data, so secrets stored in one run decrypt in the next."""
    path = root / "secrets.key"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Stack:
    root: Path
    ports: Ports = field(default_factory=Ports.free)
    tenant: str = "demo"
    postgres: Postgres = field(init=False)
    redis: Redis = field(init=False)
    kafka: KafkaBroker = field(init=False)
    keyring: DevKeyring = field(init=False)
    envoy: Envoy = field(init=False)
    processes: list[ManagedProcess] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.postgres = Postgres(self.root / "postgres", port=self.ports.postgres)
        self.redis = Redis(self.root / "redis", port=self.ports.redis)
        self.kafka = KafkaBroker(self.root / "kafka", port=self.ports.kafka)
        self.keyring = DevKeyring(self.root / "jwt")
        self.envoy = Envoy(
            self.root / "envoy",
            upstream_port=self.ports.grpc,
            jwks_file=self.keyring.jwks_path,
            port=self.ports.envoy,
            admin_port=self.ports.envoy_admin,
        )

    def env(self) -> dict[str, str]:
        """The environment Orchid's processes run with: the spec's variable names."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_", "KAFKA_"))}
        env.update(self.postgres.env())
        env.update(self.redis.env())
        env.update(self.kafka.env())
        env.update(
            {
                "GRPC_LISTEN": f"127.0.0.1:{self.ports.grpc}",
                "SERVER_METRICS_PORT": str(self.ports.server_metrics),
                "WORKER_METRICS_PORT": str(self.ports.worker_metrics),
                "SCHEDULER_METRICS_PORT": str(self.ports.scheduler_metrics),
                # Demo-friendly: a plan due now runs within seconds, and Ctrl-C stops quickly.
                "SCHEDULER_POLL_INTERVAL": "5s",
                "WORKER_SHUTDOWN_GRACE": "10s",
                "SECRETS_ENCRYPTION_KEYS": _secret_key(self.root),
                "AUTH_ISSUER_URL": DEV_ISSUER,
                "AUTH_CLIENT_ID": DEV_AUDIENCE,
                "AUTH_JWKS_FILE": str(self.keyring.jwks_path.resolve()),
                # The demo API and the tests' mock APIs run on loopback.
                "EGRESS_ALLOWLIST": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    @property
    def demo_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.demo_api}"

    def start(self) -> None:
        try:
            self.postgres.start()
            self.redis.start()
            self.kafka.start()
            self.migrate()
            self._start_server()
            self.envoy.start()
            self._start_demo_api()
            self._start_background()
        except BaseException:
            self.stop()
            raise

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "store.migrate"], env=self.env(), cwd=REPO, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ServiceStartError(f"migrations failed:\n{result.stdout}\n{result.stderr}")

    def _start_server(self) -> None:
        server = ManagedProcess(
            "server",
            [sys.executable, "-m", "server"],
            log_path=self.root / "server.log",
            env=self.env(),
            cwd=REPO,
        )
        server.start()
        self.processes.append(server)

        def ready() -> bool:
            server.check_alive()
            return port_open(self.ports.grpc)

        wait_until(ready, timeout_s=30, what="orchid server", log=server.log_path)

    def _start_process(self, name: str, argv: list[str], ready_port: int, timeout_s: float = 30) -> None:
        """Start ``argv`` as ``name`` (log: <root>/<name>.log); ready once ``ready_port`` listens."""
        process = ManagedProcess(name, argv, log_path=self.root / f"{name}.log", env=self.env(), cwd=REPO)
        process.start()
        self.processes.append(process)

        def ready() -> bool:
            process.check_alive()
            return port_open(ready_port)

        wait_until(ready, timeout_s=timeout_s, what=name, log=process.log_path)

    def _start_demo_api(self) -> None:
        argv = [sys.executable, "-m", "mockapi", "--port", str(self.ports.demo_api), "--scenario", "demo"]
        self._start_process("demo-api", argv, self.ports.demo_api)

    def _start_background(self) -> None:
        """The scheduler and the worker; each is up once its metrics port listens (the worker
        then connects to Kafka and starts consuming within a second or two)."""
        self._start_process("scheduler", [sys.executable, "-m", "scheduler"], self.ports.scheduler_metrics)
        self._start_process("worker", [sys.executable, "-m", "worker"], self.ports.worker_metrics)

    def token(self, tenant: str | None = None, *, roles: tuple[str, ...] = ()) -> str:
        return self.keyring.mint(tenant or self.tenant, roles=roles, expires_in=24 * 3600)

    def process(self, name: str) -> ManagedProcess | None:
        return next((p for p in self.processes if p.name == name), None)

    def stop(self) -> None:
        """Worker (drains within WORKER_SHUTDOWN_GRACE), scheduler, demo API, server, then Envoy
        and the servers: nothing loses a dependency while it still works."""
        for process in reversed(self.processes):
            process.stop(timeout_s=15)
        self.processes.clear()
        self.envoy.stop()
        self.kafka.stop()
        self.redis.stop()
        self.postgres.stop()
