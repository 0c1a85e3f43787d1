"""decode_body: one content type per test, no I/O."""

from __future__ import annotations

import base64

import pytest

from engine.errors import ResponseDecodeError
from engine.response_format import decode_body


def test_json_is_parsed() -> None:
    assert decode_body(b'{"a": [1, 2]}', "application/json") == ({"a": [1, 2]}, "json")


def test_vendor_json_suffix_is_json() -> None:
    assert decode_body(b'{"a": 1}', "application/vnd.api+json; charset=utf-8") == ({"a": 1}, "json")


def test_json_in_another_charset_is_reencoded() -> None:
    body = '{"name": "Müller"}'.encode("latin-1")
    assert decode_body(body, "application/json; charset=ISO-8859-1") == ({"name": "Müller"}, "json")


def test_body_claiming_json_but_invalid_is_a_decode_error() -> None:
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        decode_body(b"<html>oops</html>", "application/json")


def test_ndjson_becomes_a_list() -> None:
    assert decode_body(b'{"a":1}\n\n{"a":2}\n', "application/x-ndjson") == ([{"a": 1}, {"a": 2}], "json")


def test_xml_is_converted_to_json() -> None:
    body = b'<?xml version="1.0"?><feed><entry id="1">x</entry><entry id="2">y</entry></feed>'
    decoded, fmt = decode_body(body, "application/xml")
    assert fmt == "xml"
    assert decoded == {"feed": {"entry": [{"@id": "1", "#text": "x"}, {"@id": "2", "#text": "y"}]}}


def test_atom_xml_suffix_is_xml() -> None:
    assert decode_body(b"<feed/>", "application/atom+xml")[1] == "xml"


def test_malformed_xml_is_a_decode_error() -> None:
    with pytest.raises(ResponseDecodeError, match="not well-formed XML"):
        decode_body(b"<a><b></a>", "text/xml")


def test_csv_becomes_a_list_of_objects_keyed_by_the_header_row() -> None:
    body = b'id,name\r\n1,Ann\r\n2,"Bob, Jr."\r\n'
    assert decode_body(body, "text/csv") == (
        [{"id": "1", "name": "Ann"}, {"id": "2", "name": "Bob, Jr."}],
        "csv",
    )


def test_csv_byte_order_mark_does_not_leak_into_the_first_header() -> None:
    decoded, _ = decode_body(b"\xef\xbb\xbfid,name\n1,Ann\n", "text/csv; charset=utf-8")
    assert decoded == [{"id": "1", "name": "Ann"}]


def test_csv_row_with_extra_fields_keeps_them_under_extra() -> None:
    decoded, _ = decode_body(b"id\n1,surplus\n", "text/csv")
    assert decoded == [{"id": "1", "_extra": ["surplus"]}]


def test_text_stays_a_string() -> None:
    assert decode_body(b"hello", "text/plain; charset=utf-8") == ("hello", "text")


def test_binary_becomes_base64() -> None:
    body = bytes(range(256))
    assert decode_body(body, "application/pdf") == (base64.b64encode(body).decode(), "base64")


@pytest.mark.parametrize("content_type", ["application/json", "text/csv", None])
def test_empty_body_is_none(content_type: str | None) -> None:
    assert decode_body(b"", content_type) == (None, "empty")


def test_missing_content_type_sniffs_json() -> None:
    assert decode_body(b'  [{"a": 1}]', None) == ([{"a": 1}], "json")


def test_missing_content_type_sniffs_xml() -> None:
    assert decode_body(b"<r><v>1</v></r>", None) == ({"r": {"v": "1"}}, "xml")


def test_missing_content_type_with_broken_json_falls_back_to_text() -> None:
    assert decode_body(b"{not json", None) == ("{not json", "text")


def test_missing_content_type_with_binary_falls_back_to_base64() -> None:
    assert decode_body(b"\x89PNG\r\n\x1a\n\x00", None)[1] == "base64"
