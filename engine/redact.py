"""Keep credentials out of emitted messages.

A message on api-responses/api-errors carries the request's URL and headers, the response headers
and the extracted data. The :class:`Redactor` replaces with "[REDACTED]":
- the values of credential headers (Authorization, Cookie, Set-Cookie, X-Api-Key, *-Token, ...),
- the values of credential-named query parameters (api_key, access_token, signature, ...),
- every occurrence of a known secret string (the auth values and the config secrets), also in
  its percent-encoded forms, wherever it appears in those fields.

Secrets shorter than MIN_SECRET_LENGTH are not searched for: replacing "1" or "ab" everywhere
would garble messages while hiding nothing a credential needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlencode, urlsplit, urlunsplit

from engine.ports import JsonValue

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "Redactor", "is_sensitive_name", "secret_strings"]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4

_SENSITIVE = re.compile(
    r"(authorization|cookie|api[-_]?key|apikey|token|secret|passw(or)?d|credential|signature|"
    r"session|private[-_]?key|^auth$|[-_]auth$|^x-auth)",
    re.IGNORECASE,
)


# Names seen so far -> sensitive: every message asks again for the same few header/param names.
_SENSITIVE_NAMES: dict[str, bool] = {}
_SENSITIVE_NAMES_MAX = 4096
# A URL with none of these needs no structural rewrite (no userinfo, no fragment, nothing urlsplit
# would drop); see Redactor.url.
_URL_SLOW_MARKS = re.compile(r"[@#\t\r\n]")


def is_sensitive_name(name: str) -> bool:
    """Whether a header or query parameter name usually carries a credential."""
    known = _SENSITIVE_NAMES.get(name)
    if known is None:
        if len(_SENSITIVE_NAMES) >= _SENSITIVE_NAMES_MAX:
            _SENSITIVE_NAMES.clear()
        known = _SENSITIVE_NAMES[name] = _SENSITIVE.search(name) is not None
    return known


def secret_strings(value: JsonValue) -> Iterable[str]:
    """Every string inside an auth value, for the redactor to hide. Numbers are skipped: an
    ``expires_in`` of 3600 is no secret, and hiding "3600" everywhere would garble messages."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secret_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secret_strings(item)


class Redactor:
    """Replaces secrets in message fields. Add secrets as they appear (e.g. a refreshed token)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._known: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        changed = False
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            for form in (secret, quote(secret, safe=""), quote_plus(secret)):
                if form not in self._known:
                    self._known.add(form)
                    self._secrets.append(form)
                    changed = True
        if changed:
            # longest first, so a secret that contains another is replaced whole
            self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name: REDACTED if is_sensitive_name(name) else self.text(value) for name, value in headers.items()
        }

    def url(self, url: str) -> str:
        if _plain_url(url):
            return self.text(url)  # what the general path returns for it, without the reparse
        return self._rewrite_url(url)

    def _rewrite_url(self, url: str) -> str:
        parts = urlsplit(url)
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(is_sensitive_name(name) for name, _ in pairs):
                query = urlencode(
                    [(name, REDACTED if is_sensitive_name(name) else value) for name, value in pairs]
                )
        netloc = parts.netloc
        if "@" in netloc:  # user:password@host
            netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))

    def value(self, value: JsonValue) -> JsonValue:
        """Redact every string inside a JSON value (for extracted data)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


def _plain_url(url: str) -> bool:
    """Whether urlunsplit(urlsplit(url)) is ``url`` itself and no query parameter has a credential
    name: a lower-case http(s) URL without userinfo, fragment, control characters or an empty
    trailing "?"."""
    if not url.startswith(("https://", "http://")) or url.endswith("?"):
        return False
    if _URL_SLOW_MARKS.search(url) is not None:
        return False
    _, _, query = url.partition("?")
    if query:
        for pair in query.split("&"):
            name = pair.partition("=")[0]
            if "%" in name or "+" in name:
                name = unquote_plus(name)
            if is_sensitive_name(name):
                return False
    return True
