"""Pure parts of the store: schema validation, secret masking, encryption, page tokens."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgumentError, PreconditionFailedError
from store.crypto import SecretBox, SecretDecryptionError, generate_key, is_encrypted
from store.pagination import decode_token, encode_token, page_size
from store.schema_validation import (
    MASK,
    check_schema,
    mask_secrets,
    merge_kept_secrets,
    secret_paths,
    validate_values,
)

SCHEMA = {
    "type": "object",
    "required": ["base_url", "api_key"],
    "properties": {
        "base_url": {"type": "string", "format": "uri"},
        "api_key": {"type": "string", "minLength": 8, "secret": True},
        "oauth": {
            "type": "object",
            "properties": {
                "client_id": {"type": "string"},
                "client_secret": {"type": "string", "writeOnly": True},
            },
        },
        "token": {"type": "string", "x-secret": True},
    },
}


def test_secret_paths_include_nested_and_every_marker() -> None:
    assert secret_paths(SCHEMA) == [("api_key",), ("oauth", "client_secret"), ("token",)]
    assert secret_paths(None) == []


def test_validation_names_the_field_path_and_hides_secret_values() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        validate_values(SCHEMA, {"base_url": 3, "api_key": "short-x"})
    message = err.value.message
    assert "values.base_url: 3 is not of type 'string'" in message
    assert "values.api_key: does not satisfy 'minLength'" in message
    assert "short-x" not in message
    with pytest.raises(InvalidArgumentError, match="values: 'api_key' is a required property"):
        validate_values(SCHEMA, {"base_url": "https://x"})
    validate_values(SCHEMA, {"base_url": "https://x", "api_key": "long-enough"})


def test_invalid_schema_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="config_schema"):
        check_schema({"type": "no-such-type"})


def test_mask_and_merge_keep_stored_secrets() -> None:
    stored = {"base_url": "u", "api_key": {"$enc": "x"}, "oauth": {"client_secret": {"$enc": "y"}}}
    paths = secret_paths(SCHEMA)
    assert mask_secrets({"api_key": "k", "base_url": "u"}, paths) == {"api_key": MASK, "base_url": "u"}
    merged = merge_kept_secrets(
        {"base_url": "v", "api_key": MASK, "oauth": {"client_id": "c"}}, stored, paths
    )
    assert merged == {
        "base_url": "v",
        "api_key": {"$enc": "x"},
        "oauth": {"client_id": "c", "client_secret": {"$enc": "y"}},
    }
    assert merge_kept_secrets({"api_key": "new"}, stored, paths)["api_key"] == "new"
    assert "token" not in merge_kept_secrets({"token": MASK}, stored, paths)


def test_secret_box_roundtrip_and_rotation() -> None:
    old, new = generate_key(), generate_key()
    sealed = SecretBox([old]).encrypt({"nested": "value"})
    assert is_encrypted(sealed) and "value" not in sealed["$enc"]
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(sealed) == {"nested": "value"}
    rotated, count = rotated_box.rotate_tree({"a": sealed, "b": [sealed], "c": 1})
    assert count == 2
    assert SecretBox([new]).decrypt(rotated["a"]) == {"nested": "value"}
    with pytest.raises(SecretDecryptionError):
        SecretBox([new]).decrypt(sealed)


def test_no_key_refuses_to_store_secrets() -> None:
    with pytest.raises(PreconditionFailedError, match="SECRETS_ENCRYPTION_KEYS"):
        SecretBox([]).encrypt("x")
    with pytest.raises(ValueError, match="Fernet"):
        SecretBox(["not-a-key"])


def test_page_tokens() -> None:
    assert page_size(0) == 50 and page_size(10_000) == 500 and page_size(7) == 7
    from datetime import UTC, datetime
    from uuid import uuid4

    key = [datetime(2024, 1, 15, tzinfo=UTC), uuid4()]
    assert decode_token(encode_token(key), [datetime, type(key[1])]) == key
    assert decode_token("", [str]) is None
    with pytest.raises(InvalidArgumentError, match="page_token"):
        decode_token("!!!", [str])
    with pytest.raises(InvalidArgumentError, match="page_token"):
        decode_token(encode_token(["a"]), [str, str])


def test_negative_page_size_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="page_size"):
        page_size(-1)
