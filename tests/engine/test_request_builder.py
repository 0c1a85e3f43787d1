"""The request builder's URL check: the parse-free fast path never accepts what urlsplit rejects."""

from __future__ import annotations

import pytest

from engine.request_builder import _http_url, _plain_http_url

URLS = [
    "https://api.example.com/x", "http://127.0.0.1:8080/items/5?x=1", "https://api.example.com",
    "https://api.example.com?x=1", "https://api.example.com#f", "https://:80/x", "https:///x", "https://",
    "http://user:pw@host/x", "http://[::1]:80/x", "http://[::1/x", "HTTPS://api.example.com/x",
    "ftp://api.example.com/x", "api.example.com/x", " https://api.example.com/x", "https://\t/x",
    "https://a\nb/x", "https://bücher.example/x", "https://a b/x", "https://host:notaport/x",
    "https://host\\evil/x", "/relative", "",
]  # fmt: skip


@pytest.mark.parametrize("url", URLS)
def test_fast_url_check_only_accepts_what_urlsplit_accepts(url: str) -> None:
    if _plain_http_url(url):
        assert _http_url(url)


def test_fast_url_check_takes_the_common_urls() -> None:
    assert _plain_http_url("https://api.example.com/users/42?page=2")
    assert _plain_http_url("http://127.0.0.1:54269/pages")
