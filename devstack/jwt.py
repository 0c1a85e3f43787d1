"""Development signing keys and RS256 tokens for Envoy's jwt_authn and the server's own check.

Keys are generated at run time into a directory (default ``.devstack/jwt``, never committed):
one ``<kid>.pem`` private key per key and a ``jwks.json`` with every public key, so a rotation
is "add a key, sign with it, keep the old one published until its tokens expire".

    python -m devstack.jwt mint --tenant demo              # prints a token for tenant "demo"
    python -m devstack.jwt mint --tenant demo --roles orchid:admin
    python -m devstack.jwt rotate                          # new signing key, old one stays in the JWKS
    python -m devstack.jwt jwks                            # prints the JWKS path
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEV_ISSUER = "https://orchid.dev.local/"
DEV_AUDIENCE = "orchid-api"
DEFAULT_DIR = Path(".devstack/jwt")
DEFAULT_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class DevKey:
    """One RSA key pair and the ``kid`` that names it in the JWKS and in token headers."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> DevKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=kid or f"dev-{uuid.uuid4().hex[:12]}", private_key=key)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.pop("key_ops", None)  # RFC 7517: "use" and "key_ops" should not appear together
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def jwks_document(keys: Iterable[DevKey]) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def write_jwks(path: Path, keys: Iterable[DevKey]) -> Path:
    """Write the public keys atomically (Envoy or the server may be reading the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jwks_document(keys), indent=2))
    tmp.replace(path)
    return path


def mint(
    tenant_id: str | None,
    *,
    key: DevKey,
    roles: Sequence[str] = (),
    issuer: str = DEV_ISSUER,
    audience: str | Sequence[str] = DEV_AUDIENCE,
    expires_in: float = DEFAULT_TTL_S,
    claims_override: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Return an RS256 token signed by ``key``. ``tenant_id=None`` leaves the claim out;
    ``claims_override`` replaces or adds claims (a value of None removes that claim)."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience if isinstance(audience, str) else list(audience),
        "sub": f"dev-user@{tenant_id}" if tenant_id else "dev-user",
        "iat": int(issued),
        "nbf": int(issued) - 1,
        "exp": int(issued + expires_in),
        "jti": uuid.uuid4().hex,
    }
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    if roles:
        claims["roles"] = list(roles)
    for name, value in (claims_override or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


class DevKeyring:
    """The keys in ``root``: created on first use, the newest one signs, all are published."""

    def __init__(self, root: Path = DEFAULT_DIR) -> None:
        self.root = root
        self._keys: list[DevKey] = []
        self._load()
        if not self._keys:
            self.rotate()

    @property
    def jwks_path(self) -> Path:
        return self.root / "jwks.json"

    @property
    def keys(self) -> tuple[DevKey, ...]:
        return tuple(self._keys)

    @property
    def signing_key(self) -> DevKey:
        return self._keys[-1]

    def rotate(self, kid: str | None = None) -> DevKey:
        """Add a key that signs from now on; earlier keys stay in the JWKS."""
        key = DevKey.generate(kid)
        self.root.mkdir(parents=True, exist_ok=True)
        # The name sorts in creation order, so the newest key is last when loaded again.
        pem = self.root / f"{time.time_ns():020d}-{key.kid}.pem"
        fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_pem())
        self._keys.append(key)
        write_jwks(self.jwks_path, self._keys)
        return key

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid``: tokens it signed are rejected once verifiers refresh."""
        self._keys = [key for key in self._keys if key.kid != kid]
        for pem in self.root.glob(f"*-{kid}.pem"):
            pem.unlink()
        write_jwks(self.jwks_path, self._keys)

    def mint(
        self,
        tenant_id: str | None,
        *,
        roles: Sequence[str] = (),
        issuer: str = DEV_ISSUER,
        audience: str | Sequence[str] = DEV_AUDIENCE,
        expires_in: float = DEFAULT_TTL_S,
        kid: str | None = None,
        claims_override: Mapping[str, Any] | None = None,
    ) -> str:
        key = self.signing_key if kid is None else next(k for k in self._keys if k.kid == kid)
        return mint(
            tenant_id,
            key=key,
            roles=roles,
            issuer=issuer,
            audience=audience,
            expires_in=expires_in,
            claims_override=claims_override,
        )

    def _load(self) -> None:
        if not self.root.is_dir():
            return
        for pem in sorted(self.root.glob("*.pem")):
            private = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError(f"{pem} is not an RSA private key")
            self._keys.append(DevKey(kid=pem.stem.split("-", 1)[1], private_key=private))


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.jwt", description="Dev JWT keys and tokens")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="key directory (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    mint_cmd = commands.add_parser("mint", help="print a signed token")
    mint_cmd.add_argument("--tenant", help="tenant_id claim (omit for a token without one)")
    mint_cmd.add_argument("--roles", default="", help="comma-separated roles, e.g. orchid:admin")
    mint_cmd.add_argument("--issuer", default=DEV_ISSUER)
    mint_cmd.add_argument("--audience", default=DEV_AUDIENCE)
    mint_cmd.add_argument("--expires-in", type=float, default=DEFAULT_TTL_S, help="seconds")
    mint_cmd.add_argument("--kid", default=None, help="sign with this key instead of the newest")
    commands.add_parser("rotate", help="add a new signing key; print its kid")
    commands.add_parser("jwks", help="print the JWKS file path")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    keyring = DevKeyring(args.dir)
    if args.command == "mint":
        roles = [role for role in args.roles.split(",") if role]
        print(
            keyring.mint(
                args.tenant,
                roles=roles,
                issuer=args.issuer,
                audience=args.audience,
                expires_in=args.expires_in,
                kid=args.kid,
            )
        )
    elif args.command == "rotate":
        print(keyring.rotate().kid)
    else:
        print(keyring.jwks_path.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
