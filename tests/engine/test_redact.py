"""Credentials never reach an emitted message."""

from __future__ import annotations

import pytest

from engine.redact import REDACTED, Redactor, is_sensitive_name, secret_strings


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("Set-Cookie", True),
        ("X-Api-Key", True),
        ("x-apikey", True),
        ("api_key", True),
        ("X-Auth-Token", True),
        ("access_token", True),
        ("client_secret", True),
        ("password", True),
        ("signature", True),
        ("Content-Type", False),
        ("X-RateLimit-Remaining", False),
        ("limit", False),
        ("author", False),
    ],
)
def test_credential_names_are_recognised(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive


def test_credential_headers_are_redacted_whole_and_secrets_inside_others() -> None:
    redactor = Redactor(["s3cr3t-value"])
    headers = redactor.headers(
        {"Authorization": "Bearer abc", "X-Echo": "has s3cr3t-value inside", "Accept": "application/json"}
    )
    assert headers == {
        "Authorization": REDACTED,
        "X-Echo": f"has {REDACTED} inside",
        "Accept": "application/json",
    }


def test_urls_lose_credential_params_userinfo_and_secrets_even_percent_encoded() -> None:
    redactor = Redactor(["p@ss word!"])
    url = redactor.url(
        "https://user:pw@api.example.com/x/p%40ss%20word%21?api_key=k1&limit=5&q=p%40ss+word%21"
    )
    assert "k1" not in url and "pw" not in url and "p%40ss" not in url
    assert "limit=5" in url and url.startswith(f"https://{REDACTED}@api.example.com/x/")


def test_extracted_data_is_redacted_recursively() -> None:
    redactor = Redactor(["tok-123456"])
    assert redactor.value({"a": ["x tok-123456", {"b": "tok-123456"}], "n": 5}) == {
        "a": [f"x {REDACTED}", {"b": REDACTED}],
        "n": 5,
    }


def test_short_secrets_are_not_searched_for() -> None:
    redactor = Redactor(["ab"])
    assert redactor.text("abc") == "abc"


def test_longer_secret_wins_over_a_secret_it_contains() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.text("xabcdefghx") == f"x{REDACTED}x"


def test_secret_strings_walks_auth_values_and_skips_numbers() -> None:
    assert sorted(secret_strings({"token": "t", "nested": {"k": ["a", 3600, True]}, "exp": 60})) == ["a", "t"]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/x?offset=50&limit=50",
        "http://127.0.0.1:8080/pages?offset=0&limit=50&total=100000",
        "https://api.example.com/x/s3cr3t-value/y?q=s3cr3t-value",
        "https://api.example.com/x?api_key=k1&limit=5",
        "https://api.example.com/x?Api%5FKey=k1",
        "https://api.example.com/x?access+token=k1",
        "https://user:pw@api.example.com/x?limit=5",
        "https://api.example.com/x?limit=5#frag",
        "https://api.example.com/x?",
        "https://api.example.com",
        "https://api.example.com?x=1",
        "HTTPS://api.example.com/x",
        "https://api.example.com/x?a&&b=&=c",
        "https://api.example.com/a%20b?c=d%26e",
        " https://api.example.com/x",
        "https://api.example.com/x\n?y=1",
    ],
)
def test_url_fast_path_returns_what_the_full_rewrite_returns(url: str) -> None:
    redactor = Redactor(["s3cr3t-value"])
    assert redactor.url(url) == redactor._rewrite_url(url)
