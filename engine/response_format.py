"""Decode a response body by its content type into the JSON value a plan sees (pure).

JSON is parsed as is, XML is converted to JSON (xmltodict), CSV becomes a list of objects keyed
by the header row, text/* stays a string and anything else becomes a base64 string, so every
body can travel inside a JSON Kafka message. An empty body is None.

A body whose content type claims JSON (or XML, or CSV) but does not parse raises
ResponseDecodeError: silently passing it on as text would hide a broken upstream behind a
plan that then fails somewhere less obvious. When the content type is missing the format is
sniffed, and a sniff that turns out wrong falls back to text or base64 instead of failing.
"""

from __future__ import annotations

import base64
import codecs
import csv
import functools
import io
from typing import Literal
from xml.parsers.expat import ExpatError

import orjson
import xmltodict

from engine.errors import ResponseDecodeError
from engine.ports import JsonValue

__all__ = ["BodyFormat", "decode_body", "format_for"]

BodyFormat = Literal["json", "xml", "csv", "text", "base64", "empty"]

_JSON_TYPES = frozenset({"application/json", "text/json", "application/javascript-json"})
_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


@functools.lru_cache(maxsize=256)
def _split_content_type(content_type: str | None) -> tuple[str, str | None]:
    """("application/json", "utf-8") from "Application/JSON; charset=UTF-8"."""
    if not content_type:
        return "", None
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


@functools.lru_cache(maxsize=256)
def format_for(content_type: str | None) -> BodyFormat | Literal["ndjson"] | None:
    """The format a content type declares, or None when it declares nothing (sniff instead)."""
    media, _ = _split_content_type(content_type)
    if not media:
        return None
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    if media in _NDJSON_TYPES:
        return "ndjson"
    if media in _XML_TYPES or media.endswith("+xml"):
        return "xml"
    if media in _CSV_TYPES:
        return "csv"
    if media.startswith("text/"):
        return "text"
    return "base64"


def decode_body(body: bytes, content_type: str | None) -> tuple[JsonValue, BodyFormat]:
    """Return the decoded body and its format. Raises ResponseDecodeError when the body does not
    parse as the format its content type declares."""
    if not body:
        return None, "empty"
    declared = format_for(content_type)
    _, charset = _split_content_type(content_type)
    if declared is None:
        return _sniff(body)
    if declared == "json":
        return _decode_json(body, charset, content_type), "json"
    if declared == "ndjson":
        return _decode_ndjson(body, charset, content_type), "json"
    if declared == "xml":
        return _decode_xml(body, content_type), "xml"
    if declared == "csv":
        return _decode_csv(_text(body, charset), content_type), "csv"
    if declared == "text":
        return _text(body, charset), "text"
    return _base64(body), "base64"


def _text(body: bytes, charset: str | None) -> str:
    encoding = charset or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    # utf-8-sig drops a byte-order mark that would otherwise end up inside the first CSV header.
    if encoding in _UTF8_NAMES:
        encoding = "utf-8-sig"
    return body.decode(encoding, errors="replace")


def _utf8(body: bytes, charset: str | None) -> bytes:
    """orjson reads UTF-8 only: re-encode a body declared in another charset."""
    if charset is None or charset in _UTF8_NAMES:
        return body
    return _text(body, charset).encode("utf-8")


def _decode_json(body: bytes, charset: str | None, content_type: str | None) -> JsonValue:
    try:
        return orjson.loads(_utf8(body, charset))
    except orjson.JSONDecodeError as exc:
        raise ResponseDecodeError(
            f"response declared {content_type!r} but is not valid JSON: {exc} (body starts {body[:80]!r})"
        ) from exc


def _decode_ndjson(body: bytes, charset: str | None, content_type: str | None) -> JsonValue:
    """Newline-delimited JSON becomes a list, one element per non-empty line."""
    items: list[JsonValue] = []
    for number, line in enumerate(_utf8(body, charset).splitlines(), start=1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ResponseDecodeError(
                    f"response declared {content_type!r} but line {number} is not valid JSON: {exc}"
                ) from exc
    return items


def _decode_xml(body: bytes, content_type: str | None) -> JsonValue:
    # expat reads the encoding from the XML declaration itself, so hand it the bytes.
    try:
        return xmltodict.parse(body)
    except ExpatError as exc:
        raise ResponseDecodeError(
            f"response declared {content_type!r} but is not well-formed XML: {exc}"
        ) from exc


def _decode_csv(text: str, content_type: str | None) -> JsonValue:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
        return [dict(row) for row in reader]
    except csv.Error as exc:
        raise ResponseDecodeError(f"response declared {content_type!r} but is not valid CSV: {exc}") from exc


def _base64(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def _sniff(body: bytes) -> tuple[JsonValue, BodyFormat]:
    """No content type: try what the first byte suggests, and fall back rather than fail."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        try:
            return orjson.loads(body.lstrip(b"\xef\xbb\xbf")), "json"
        except orjson.JSONDecodeError:
            pass
    elif head == b"<":
        try:
            return xmltodict.parse(body), "xml"
        except ExpatError:
            pass
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _base64(body), "base64"
    if "\x00" in text:
        return _base64(body), "base64"
    return text, "text"
