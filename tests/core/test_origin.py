"""The Origin policy (wsjet.core.origin): same-origin default, allow-lists, parsing."""

from __future__ import annotations

import pickle
import re

import pytest

import wsjet
from wsjet.core.origin import ANY_ORIGIN, OriginRule, origin_allowed, parse_origins, same_origin


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://example.com", "example.com"),
        ("https://example.com", "example.com:443"),
        ("https://example.com:443", "example.com"),
        ("http://example.com", "example.com"),
        ("http://example.com", "example.com:80"),
        ("http://example.com:8080", "example.com:8080"),
        ("https://example.com:8080", "example.com:8080"),
        ("HTTPS://EXAMPLE.com", "example.COM"),
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("http://[::1]:8765", "[::1]:8765"),
        ("https://[::1]", "[::1]:443"),
        ("https://example.com", " example.com\t"),
    ],
)
def test_same_origin(origin: str, host: str) -> None:
    assert same_origin(origin, host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://example.com", "example.com:80"),  # https: 443
        ("http://example.com", "example.com:443"),  # http: 80
        ("https://example.com:8443", "example.com"),
        ("https://example.com", "example.com:8443"),
        ("https://example.com:8443", "example.com:8444"),
        ("https://evil.com", "example.com"),
        ("https://example.com.evil.com", "example.com"),
        ("https://evilexample.com", "example.com"),
        ("https://sub.example.com", "example.com"),
        ("https://example.com", "sub.example.com"),
        ("https://example.com.", "example.com"),
        ("http://localhost:8765", "127.0.0.1:8765"),
        ("https://example.com/", "example.com"),
        ("https://example.com/x", "example.com"),
        ("https://example.com?x", "example.com"),
        ("https://example.com#x", "example.com"),
        ("https://user@example.com", "example.com"),
        ("https://evil.com@example.com", "example.com"),
        ("https://example.com:", "example.com"),
        ("https://example.com:x", "example.com"),
        ("https://example.com:99999", "example.com:99999"),
        ("https://example.com:443:443", "example.com"),
        ("https://[::1", "[::1"),
        ("https://[::1]x", "[::1]x"),
        ("https://", ""),
        ("ws://example.com", "example.com"),  # browsers send the page's http(s) origin
        ("wss://example.com", "example.com"),
        ("chrome-extension://abcdef", "abcdef"),
        ("file://", ""),
        ("null", "example.com"),
        ("example.com", "example.com"),
        ("", "example.com"),
        ("https://ex\xe1mple.com", "ex\xe1mple.com"),  # not ASCII: browsers send punycode
        ("https://exa mple.com", "exa mple.com"),
    ],
)
def test_not_same_origin(origin: str, host: str) -> None:
    assert not same_origin(origin, host)


def test_origin_allowed_by_policy() -> None:
    # None: the same-origin default.
    assert origin_allowed(None, "example.com", None)
    assert origin_allowed(None, None, None)
    assert origin_allowed("https://example.com", "example.com", None)
    assert not origin_allowed("https://evil.com", "example.com", None)
    assert not origin_allowed("https://example.com", None, None)
    # ANY_ORIGIN: no check.
    for origin in (None, "https://evil.com", "null"):
        assert origin_allowed(origin, "example.com", ANY_ORIGIN)
    # A list: exactly its rules; same origin is not implied.
    rules: list[OriginRule] = ["https://a.test", re.compile(r"https://([a-z]+\.)?b\.test")]
    assert origin_allowed("https://a.test", "x", rules)
    assert origin_allowed("https://api.b.test", "x", rules)
    assert not origin_allowed("https://api.b.test.evil", "x", rules)  # fullmatch
    assert not origin_allowed("https://A.test", "x", rules)  # strings compare exactly
    assert not origin_allowed(None, "x", rules)
    assert not origin_allowed("https://x", "x", rules)
    assert origin_allowed(None, "x", [None])
    assert not origin_allowed("https://x", "x", [None])
    assert not origin_allowed("https://x", "x", [])


def test_parse_origins() -> None:
    assert parse_origins(["*"]) is ANY_ORIGIN
    assert parse_origins([" * "]) is ANY_ORIGIN
    assert parse_origins(["https://a.test", " none", "", "NONE"]) == (
        "https://a.test",
        None,
        None,
        None,
    )
    parsed = parse_origins(["re:https://([a-z]+\\.)?b\\.test"])
    assert isinstance(parsed, tuple) and len(parsed) == 1
    pattern = parsed[0]
    assert isinstance(pattern, re.Pattern)
    assert pattern.fullmatch("https://api.b.test")
    assert parse_origins([]) == ()
    with pytest.raises(ValueError, match="only item"):
        parse_origins(["*", "https://a.test"])
    with pytest.raises(ValueError, match="invalid pattern"):
        parse_origins(["re:("])


def test_any_origin_is_one_public_value() -> None:
    assert wsjet.ANY_ORIGIN is ANY_ORIGIN
    assert repr(ANY_ORIGIN) == "wsjet.ANY_ORIGIN"
    # Pickled across processes (run_workers spawns), it stays the same value.
    assert pickle.loads(pickle.dumps(ANY_ORIGIN)) is ANY_ORIGIN
