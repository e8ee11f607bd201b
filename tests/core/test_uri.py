"""Tests of wsjet.core.uri: ws:// and wss:// URIs (RFC 6455 §3)."""

from __future__ import annotations

import dataclasses

import pytest

from wsjet.core.uri import WebSocketURI, parse_uri
from wsjet.exceptions import InvalidHandshake, InvalidURI


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:8080/chat", WebSocketURI(False, "example.com", 8080, "/chat")),
        ("wss://example.com/a/b?x=1&y=2", WebSocketURI(True, "example.com", 443, "/a/b?x=1&y=2")),
        ("ws://example.com?x=1", WebSocketURI(False, "example.com", 80, "/?x=1")),
        ("WSS://Example.COM:443/Path", WebSocketURI(True, "example.com", 443, "/Path")),
        ("ws://h:/x", WebSocketURI(False, "h", 80, "/x")),
        ("ws://h:08080", WebSocketURI(False, "h", 8080, "/")),
        ("ws://127.0.0.1:9000/", WebSocketURI(False, "127.0.0.1", 9000, "/")),
        ("ws://[::1]/", WebSocketURI(False, "::1", 80, "/")),
        ("wss://[2001:db8::7]:8443/s", WebSocketURI(True, "2001:db8::7", 8443, "/s")),
        ("ws://user@h/", WebSocketURI(False, "h", 80, "/", "user", None)),
        ("ws://us%20er:p%40ss%3A@h/", WebSocketURI(False, "h", 80, "/", "us er", "p@ss:")),
        ("ws://:secret@h/", WebSocketURI(False, "h", 80, "/", "", "secret")),
        # Already-escaped characters are kept as they are ...
        ("ws://h/a%20b?c=%2F", WebSocketURI(False, "h", 80, "/a%20b?c=%2F")),
        ("ws://h/!$&'()*+,;=:@~-._?q=/?", WebSocketURI(False, "h", 80, "/!$&'()*+,;=:@~-._?q=/?")),
        # ... others are percent-encoded, and host names IDNA-encoded.
        ("ws://h/é?q=é", WebSocketURI(False, "h", 80, "/%C3%A9?q=%C3%A9")),
        ('ws://h/a"<>{}|\\^`', WebSocketURI(False, "h", 80, "/a%22%3C%3E%7B%7D%7C%5C%5E%60")),
        ("ws://bücher.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/")),
    ],
)
def test_parse_valid(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "host_header"),
    [
        ("ws://example.com", "example.com"),
        ("ws://example.com:80", "example.com"),
        ("ws://example.com:443", "example.com:443"),
        ("wss://example.com:443", "example.com"),
        ("wss://example.com:80", "example.com:80"),
        ("ws://example.com:8080", "example.com:8080"),
        ("ws://[::1]", "[::1]"),
        ("wss://[::1]:443", "[::1]"),
        ("ws://[::1]:8080", "[::1]:8080"),
    ],
)
def test_host_header(uri: str, host_header: str) -> None:
    assert parse_uri(uri).host_header == host_header


def test_resource_name_and_immutability() -> None:
    uri = parse_uri("wss://example.com/chat?room=1")
    assert uri.resource_name == uri.path == "/chat?room=1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("uri", "detail"),
    [
        ("http://example.com/", "scheme isn't ws or wss"),
        ("https://example.com/", "scheme isn't ws or wss"),
        ("example.com/chat", "scheme isn't ws or wss"),
        ("", "scheme isn't ws or wss"),
        ("wsss://example.com", "scheme isn't ws or wss"),
        ("ws://", "missing host"),
        ("ws:///chat", "missing host"),
        ("ws://user@/chat", "missing host"),
        ("ws:example.com/chat", "missing host"),
        ("ws://example.com/#frag", "fragment identifier not allowed"),
        ("ws://example.com/chat#", "fragment identifier not allowed"),
        ("ws://example.com?x#y", "fragment identifier not allowed"),
        ("ws://example.com:abc/", "invalid port"),
        ("ws://example.com:-1/", "invalid port"),
        ("ws://example.com:+80/", "invalid port"),
        ("ws://example.com:65536/", "invalid port"),
        ("ws://example.com:0/", "port 0"),
        ("ws://[::1/", "Invalid IPv6 URL"),
        ("ws://example.com/a b", "whitespace or control character"),
        (" ws://example.com/", "whitespace or control character"),
        ("ws://example.com/\n", "whitespace or control character"),
        ("ws://exa\tmple.com/", "whitespace or control character"),
        ("ws://example.com/\r\nHost: evil", "whitespace or control character"),
        ("ws://example.com/\x00", "whitespace or control character"),
        ("ws://example.com/\x7f", "whitespace or control character"),
        ("ws://" + "a" * 64 + "é.com/", "cannot be IDNA-encoded"),
    ],
)
def test_parse_invalid(uri: str, detail: str) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.uri == uri
    assert detail in str(info.value)
    assert repr(uri) in str(info.value)
    assert isinstance(info.value, InvalidHandshake)
