"""Dev keys, JWKS documents and tokens (devstack/jwt.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from devstack.jwt import DEV_AUDIENCE, DEV_ISSUER, DevKeyring

REPO = Path(__file__).resolve().parents[2]


def decode(keys: DevKeyring, token: str, issuer: str | None = None) -> dict[str, object]:
    jwks = jwt.PyJWKSet.from_json(keys.jwks_path.read_text())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, object] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=DEV_AUDIENCE, issuer=issuer
    )
    return claims


def test_mint_makes_an_rs256_token_the_jwks_verifies(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path)
    token = keys.mint("demo", roles=["orchid:admin"], expires_in=60)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": keys.signing_key.kid, "typ": "JWT"}
    claims = decode(keys, token, issuer=DEV_ISSUER)
    assert claims["tenant_id"] == "demo" and claims["roles"] == ["orchid:admin"]
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == 60


def test_claims_override_adds_and_removes(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path)
    claims = decode(keys, keys.mint("demo", claims_override={"tenant_id": None, "scope": "x"}))
    assert "tenant_id" not in claims and claims["scope"] == "x"


def test_rotation_keeps_old_keys_published_until_retired(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path)
    first = keys.signing_key
    second = keys.rotate()
    assert keys.signing_key == second
    assert [k["kid"] for k in json.loads(keys.jwks_path.read_text())["keys"]] == [first.kid, second.kid]
    reloaded = DevKeyring(tmp_path)  # keys persist, newest still signs
    assert [k.kid for k in reloaded.keys] == [first.kid, second.kid]
    assert reloaded.signing_key.kid == second.kid
    keys.retire(first.kid)
    assert [k["kid"] for k in json.loads(keys.jwks_path.read_text())["keys"]] == [second.kid]
    assert len(list(tmp_path.glob("*.pem"))) == 1


def test_jwks_has_no_private_parts(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path)
    (entry,) = json.loads(keys.jwks_path.read_text())["keys"]
    assert set(entry) == {"kty", "n", "e", "kid", "alg", "use"}
    assert oct((tmp_path / next(tmp_path.glob("*.pem")).name).stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize("args", [["mint", "--tenant", "demo", "--roles", "a,b"], ["jwks"], ["rotate"]])
def test_cli(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.jwt", "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    output = result.stdout.strip()
    keys = DevKeyring(tmp_path)
    if args[0] == "mint":
        assert decode(keys, output)["roles"] == ["a", "b"]
    elif args[0] == "jwks":
        assert Path(output) == keys.jwks_path.resolve()
    else:
        assert keys.signing_key.kid == output
