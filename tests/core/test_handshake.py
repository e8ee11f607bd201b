"""Tests of wsjet.core.handshake: the opening handshake of RFC 6455 §4."""

from __future__ import annotations

import base64

import pytest

from wsjet.core.handshake import (
    GUID,
    SERVER_HEADER,
    USER_AGENT,
    WSJET_VERSION,
    accept_key,
    build_request,
    build_response,
    check_request,
    check_response,
    check_subprotocol,
    generate_key,
    parse_extensions,
    parse_subprotocols,
    reject,
    reject_for,
    select_subprotocol,
    serialize_extensions,
)
from wsjet.core.http import Headers, Request, RequestReader, Response, ResponseReader
from wsjet.exceptions import (
    HeadersTooLarge,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    InvalidVersion,
    NegotiationError,
    RequestLineTooLong,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def rfc_request(**changes: list[str] | None) -> Request:
    """The RFC 6455 §1.2 request; ``changes`` maps a header to its new values."""
    fields = {
        "Host": ["server.example.com"],
        "Upgrade": ["websocket"],
        "Connection": ["Upgrade"],
        "Sec_WebSocket_Key": [KEY],
        "Origin": ["http://example.com"],
        "Sec_WebSocket_Protocol": ["chat, superchat"],
        "Sec_WebSocket_Version": ["13"],
    }
    fields.update({name: values or [] for name, values in changes.items()})
    headers = Headers()
    for name, values in fields.items():
        for value in values:
            headers.add(name.replace("_", "-"), value)
    return Request("/chat", headers)


def rfc_response(**changes: list[str] | None) -> Response:
    fields = {"Upgrade": ["websocket"], "Connection": ["Upgrade"], "Sec_WebSocket_Accept": [ACCEPT]}
    fields.update({name: values or [] for name, values in changes.items()})
    headers = Headers()
    for name, values in fields.items():
        for value in values:
            headers.add(name.replace("_", "-"), value)
    return Response(101, "Switching Protocols", headers)


# --- keys --------------------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(KEY) == ACCEPT


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16


def test_version_constants() -> None:
    assert SERVER_HEADER == USER_AGENT == f"wsjet/{WSJET_VERSION}"


# --- server: check_request -------------------------------------------------------------


def test_check_request_rfc_example() -> None:
    assert check_request(rfc_request()) == KEY


@pytest.mark.parametrize(
    "changes",
    [
        {"Upgrade": ["WebSocket"]},
        {"Upgrade": ["h2c, WEBSOCKET"]},
        {"Upgrade": ["h2c", "websocket"]},
        {"Connection": ["keep-alive, Upgrade"]},
        {"Connection": ["keep-alive", "upgrade"]},
        {"Connection": [" ,UPGRADE ,"]},
        {"Origin": None, "Sec_WebSocket_Protocol": None},
    ],
)
def test_check_request_accepts_variants(changes: dict[str, list[str] | None]) -> None:
    assert check_request(rfc_request(**changes)) == KEY


@pytest.mark.parametrize("name", ["Sec_WebSocket_Protocol", "Sec_WebSocket_Extensions"])
def test_check_request_caps_negotiation_headers(name: str) -> None:
    """RFC 6455 §4.2.1 items 8-9 offers: all lines of each header together at most 4096 bytes."""
    header = name.replace("_", "-")
    assert check_request(rfc_request(**{name: ["a" * 4096]})) == KEY
    assert check_request(rfc_request(**{name: ["a" * 2048, "b" * 2048]})) == KEY
    for values in (["a" * 4097], ["a" * 2048, "b" * 2049], ["a" * 1000] * 5):
        with pytest.raises(HeadersTooLarge) as info:
            check_request(rfc_request(**{name: values}))
        assert info.value.status == 431 and info.value.header == header
        assert "aaa" not in str(info.value)
    # The limit is a keyword (HTTPLimits.max_negotiation_bytes on a server).
    assert check_request(rfc_request(**{name: ["a" * 5000]}), max_negotiation_bytes=5000) == KEY
    with pytest.raises(HeadersTooLarge):
        check_request(rfc_request(**{name: ["abc"]}), max_negotiation_bytes=2)
    # The other header counts on its own.
    other = (
        "Sec_WebSocket_Extensions" if name == "Sec_WebSocket_Protocol" else "Sec_WebSocket_Protocol"
    )
    assert check_request(rfc_request(**{name: ["a" * 4096], other: ["b" * 4096]})) == KEY


@pytest.mark.parametrize("method", ["POST", "HEAD", "get", "CONNECT"])
def test_check_request_method_not_allowed(method: str) -> None:
    request = rfc_request()
    request.method = method
    with pytest.raises(InvalidMessage, match="unsupported HTTP method") as info:
        check_request(request)
    assert type(info.value) is InvalidMessage
    assert info.value.status == 405
    assert InvalidMessage("other").status == 400  # the instance only was changed


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"Host": None}, InvalidHeader, "missing Host header"),
        ({"Host": ["a", "b"]}, InvalidHeader, "2 Host headers"),
        ({"Host": [""]}, InvalidHeader, "empty Host header"),
        ({"Upgrade": None}, InvalidUpgrade, "missing Upgrade header"),
        ({"Upgrade": ["h2c"]}, InvalidUpgrade, "invalid Upgrade header: 'h2c'"),
        ({"Upgrade": ["websocket2"]}, InvalidUpgrade, "invalid Upgrade"),
        ({"Upgrade": [""]}, InvalidUpgrade, "empty Upgrade header"),
        ({"Connection": None}, InvalidUpgrade, "missing Connection header"),
        ({"Connection": ["keep-alive"]}, InvalidUpgrade, "invalid Connection header"),
        ({"Connection": ["keep-alive", "close"]}, InvalidUpgrade, "'keep-alive, close'"),
        ({"Sec_WebSocket_Key": None}, InvalidHeader, "missing Sec-WebSocket-Key"),
        ({"Sec_WebSocket_Key": [KEY, KEY]}, InvalidHeader, "2 Sec-WebSocket-Key headers"),
        ({"Sec_WebSocket_Key": ["!!!!"]}, InvalidHeader, "expected 16 bytes"),
        ({"Sec_WebSocket_Key": [KEY[:-4]]}, InvalidHeader, "expected 16 bytes"),
        ({"Sec_WebSocket_Key": [KEY + "AAAA"]}, InvalidHeader, "expected 16 bytes"),
        ({"Sec_WebSocket_Key": [KEY[:-2]]}, InvalidHeader, "expected 16 bytes"),
        ({"Sec_WebSocket_Key": [" " + KEY]}, InvalidHeader, "expected 16 bytes"),
        ({"Sec_WebSocket_Key": ["dGhlIHNhbXBsZSBub25jZ\xe9=="]}, InvalidHeader, "16 bytes"),
        ({"Sec_WebSocket_Key": [""]}, InvalidHeader, "empty Sec-WebSocket-Key"),
        ({"Sec_WebSocket_Version": None}, InvalidVersion, "missing Sec-WebSocket-Version"),
        ({"Sec_WebSocket_Version": ["8"]}, InvalidVersion, "only 13 is supported"),
        ({"Sec_WebSocket_Version": ["13, 8"]}, InvalidVersion, "only 13"),
        ({"Sec_WebSocket_Version": ["13", "13"]}, InvalidVersion, "2 Sec-WebSocket-Version"),
    ],
)
def test_check_request_rejects(
    changes: dict[str, list[str] | None], error: type[InvalidHeader], fragment: str
) -> None:
    with pytest.raises(InvalidHeader, match=fragment) as info:
        check_request(rfc_request(**changes))
    assert type(info.value) is error
    assert info.value.status == (426 if error is InvalidVersion else 400)


# --- server: build_response, reject ----------------------------------------------------


def test_build_response_golden() -> None:
    response = build_response(KEY)
    assert response.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Server: wsjet/" + WSJET_VERSION.encode() + b"\r\n"
        b"\r\n"
    )


def test_build_response_options() -> None:
    response = build_response(
        KEY,
        subprotocol="chat",
        extensions="permessage-deflate; server_no_context_takeover",
        extra_headers=Headers([("X-A", "1"), ("X-B", "2")]),
        server_header=None,
    )
    assert response.headers.items() == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover"),
        ("X-A", "1"),
        ("X-B", "2"),
    ]
    check_response(response, KEY)


def test_reject_golden() -> None:
    assert reject(400).serialize() == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 12\r\n"
        b"Connection: close\r\n"
        b"Server: wsjet/" + WSJET_VERSION.encode() + b"\r\n"
        b"\r\n"
        b"Bad Request\n"
    )


def test_reject_with_text_and_special_statuses() -> None:
    response = reject(403, "Verboten ☃\n", server_header=None)
    assert response.body == "Verboten ☃\n".encode()
    assert response.headers["Content-Length"] == str(len(response.body))
    assert "Server" not in response.headers
    upgrade = reject(426)
    assert (upgrade.reason, upgrade.headers["Sec-WebSocket-Version"]) == ("Upgrade Required", "13")
    not_allowed = reject(405)
    assert not_allowed.headers["Allow"] == "GET"
    unknown = reject(599)
    assert (unknown.reason, unknown.body) == ("Unknown Status", b"Unknown Status\n")
    assert "Allow" not in upgrade.headers and "Sec-WebSocket-Version" not in not_allowed.headers


def method_error() -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        check_request(Request("/", Headers(), method="POST"))
    return info.value


@pytest.mark.parametrize(
    ("exc", "status", "fragment"),
    [
        (InvalidVersion("Sec-WebSocket-Version", "8"), 426, "only version 13"),
        (InvalidOrigin("Origin", "https://evil.example"), 403, "origin not allowed"),
        (NegotiationError("Sec-WebSocket-Protocol", "x"), 400, "negotiation failed"),
        (InvalidUpgrade("Upgrade", "h2c"), 400, "invalid Upgrade header"),
        (InvalidHeader("Sec-WebSocket-Key", "???"), 400, "invalid Sec-WebSocket-Key header"),
        (InvalidHeader("X-<script>", "<script>"), 400, "invalid a header"),
        (RequestLineTooLong("long", 414), 414, "request header too large"),
        (RequestLineTooLong("long"), 431, "request header too large"),
        (HeadersTooLarge("many"), 431, "request header too large"),
        (
            HeadersTooLarge("<script>", header="Sec-WebSocket-Extensions"),
            431,
            "Sec-WebSocket-Extensions header too large",
        ),
        (HeadersTooLarge("big", header="X-<script>"), 431, "request header too large"),
        (InvalidMessage("bare LF <script>"), 400, "invalid HTTP request"),
        (method_error(), 405, "only the GET method"),
        (InvalidHandshake("<script>"), 400, "invalid opening handshake"),
    ],
)
def test_reject_for(exc: InvalidHandshake, status: int, fragment: str) -> None:
    response = reject_for(exc)
    assert response.status == status
    body = response.body.decode()
    assert body.startswith("Failed to open a WebSocket connection: ")
    assert fragment in body
    assert body.endswith(".\n")
    # Nothing the peer sent is reflected.
    for reflected in ("<script>", "evil", "h2c", "???", "POST"):
        assert reflected not in body
        assert reflected not in response.serialize().decode("latin-1")
    assert ("Sec-WebSocket-Version" in response.headers) == (status == 426)
    assert ("Allow" in response.headers) == (status == 405)
    assert "Server" not in reject_for(exc, server_header=None).headers


def test_server_error_path_end_to_end() -> None:
    reader = RequestReader()
    request = reader.feed(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 7\r\n\r\n"
    )
    assert request is not None
    with pytest.raises(InvalidVersion) as info:
        check_request(request)
    client = ResponseReader()
    response = client.feed(reject_for(info.value).serialize())
    assert response is not None
    assert response.status == 426
    assert response.headers["Sec-WebSocket-Version"] == "13"
    with pytest.raises(InvalidStatus) as status_info:
        check_response(response, KEY)
    assert status_info.value.status_code == 426
    assert status_info.value.response is response


# --- subprotocols ----------------------------------------------------------------------


def protocol_headers(*values: str) -> Headers:
    return Headers([("Sec-WebSocket-Protocol", value) for value in values])


def test_parse_subprotocols() -> None:
    assert parse_subprotocols(Headers()) == []
    assert parse_subprotocols(protocol_headers("chat, superchat")) == ["chat", "superchat"]
    assert parse_subprotocols(protocol_headers("a", " b ,\tc", "a,,")) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("value", ["", " , ", "a b", "chat, sup:erchat", '"chat"', "a;b"])
def test_parse_subprotocols_rejects(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_subprotocols(protocol_headers("ok", value))
    assert info.value.name == "Sec-WebSocket-Protocol"


def test_select_subprotocol_server_preference() -> None:
    assert select_subprotocol(["chat", "superchat"], ["superchat", "chat"]) == "superchat"
    assert select_subprotocol(["chat", "superchat"], ["other", "chat"]) == "chat"
    assert select_subprotocol(["chat"], ["Chat"]) is None
    assert select_subprotocol([], ["chat"]) is None
    assert select_subprotocol(["chat"], []) is None


def test_check_subprotocol() -> None:
    assert check_subprotocol(rfc_response(), ["chat"]) is None
    assert check_subprotocol(rfc_response(), []) is None
    response = rfc_response(Sec_WebSocket_Protocol=["chat"])
    assert check_subprotocol(response, ["superchat", "chat"]) == "chat"


@pytest.mark.parametrize(
    ("values", "offered", "fragment"),
    [
        (["chat"], [], "not offered"),
        (["chat"], ["superchat"], "not offered"),
        (["chat, superchat"], ["chat", "superchat"], "several"),
        (["chat", "chat"], ["chat"], "several"),
    ],
)
def test_check_subprotocol_rejects(values: list[str], offered: list[str], fragment: str) -> None:
    with pytest.raises(NegotiationError, match=fragment):
        check_subprotocol(rfc_response(Sec_WebSocket_Protocol=values), offered)


def test_check_subprotocol_malformed() -> None:
    with pytest.raises(InvalidHeader):
        check_subprotocol(rfc_response(Sec_WebSocket_Protocol=["a b"]), ["a b"])


# --- extensions --------------------------------------------------------------------------


def extension_headers(*values: str) -> Headers:
    return Headers([("Sec-WebSocket-Extensions", value) for value in values])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (
            ["permessage-deflate; client_max_window_bits; server_max_window_bits=10"],
            [
                (
                    "permessage-deflate",
                    [("client_max_window_bits", None), ("server_max_window_bits", "10")],
                )
            ],
        ),
        (["a ; b = 1 ;c\t,\td"], [("a", [("b", "1"), ("c", None)]), ("d", [])]),
        (['a; b="10"'], [("a", [("b", "10")])]),
        (['a; b="1\\0"'], [("a", [("b", "10")])]),
        (["a", "b; c=d"], [("a", []), ("b", [("c", "d")])]),
        ([", a,, b ,"], [("a", []), ("b", [])]),
        (["constructor,__proto__"], [("constructor", []), ("__proto__", [])]),
        (["a; __proto__=constructor"], [("a", [("__proto__", "constructor")])]),
    ],
)
def test_parse_extensions(values: list[str], expected: list[object]) -> None:
    assert parse_extensions(extension_headers(*values)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ,",
        "a;",
        "a; ",
        "a;;b",
        "a;=b",
        "a; b=",
        "a; b=,",
        "a b",
        "a=b",
        ";a",
        "a; b c",
        'a; b="1 0"',
        'a; b=""',
        'a; b="10',
        'a; b="10\\',
        'a; b="10"x',
        'a; b="1"="2"',
        '"a"',
        "a; b=c=d",
        "é",
        "a; b=é",
    ],
)
def test_parse_extensions_rejects(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_extensions(extension_headers("ok", value))
    assert info.value.name == "Sec-WebSocket-Extensions"
    assert info.value.value == value


def test_parse_extensions_adversarial_8k() -> None:
    # Each input is parsed in one forward pass; these would blow up a
    # backtracking parser and must simply be parsed (or rejected) here.
    many_params = "a" + ";a" * 4096
    ((name, params),) = parse_extensions(extension_headers(many_params))
    assert name == "a" and params == [("a", None)] * 4096
    many_names = ",".join(["a"] * 4096)
    assert parse_extensions(extension_headers(many_names)) == [("a", [])] * 4096
    long_quoted = 'x; p="' + "v" * 8192 + '"'
    assert parse_extensions(extension_headers(long_quoted)) == [("x", [("p", "v" * 8192)])]
    escaped = 'x; p="' + "\\v" * 4096 + '"'
    assert parse_extensions(extension_headers(escaped)) == [("x", [("p", "v" * 4096)])]
    spaces = "a" + " " * 8192 + ";" + " " * 8192 + "b"
    assert parse_extensions(extension_headers(spaces)) == [("a", [("b", None)])]
    for bad in ("a;" * 4096, 'x; p="' + "v" * 8192, "a" + "=" * 8192, "a; b=" + '"' * 8191):
        with pytest.raises(InvalidHeader):
            parse_extensions(extension_headers(bad))


def test_serialize_extensions() -> None:
    extensions = [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-other", []),
    ]
    text = serialize_extensions(extensions)
    assert text == (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-other"
    )
    assert parse_extensions(extension_headers(text)) == extensions
    assert serialize_extensions([]) == ""


@pytest.mark.parametrize(
    "extensions",
    [[("a b", [])], [("a", [("b c", None)])], [("a", [("b", "1 0")])], [("a", [("b", "")])]],
)
def test_serialize_extensions_rejects_non_tokens(
    extensions: list[tuple[str, list[tuple[str, str | None]]]],
) -> None:
    with pytest.raises(ValueError):
        serialize_extensions(extensions)


# --- client --------------------------------------------------------------------------------


def test_build_request_rfc_example() -> None:
    request = build_request(
        "server.example.com",
        "/chat",
        KEY,
        subprotocols=["chat", "superchat"],
        origin="http://example.com",
        user_agent=None,
    )
    assert request.serialize() == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"\r\n"
    )
    assert check_request(request) == KEY


def test_build_request_defaults_and_extras() -> None:
    request = build_request("h:8080", "/", KEY, extensions="permessage-deflate")
    assert request.headers.items()[-2:] == [
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("User-Agent", USER_AGENT),
    ]
    assert "Origin" not in request.headers and "Sec-WebSocket-Protocol" not in request.headers
    assert "Sec-WebSocket-Protocol" not in build_request("h", "/", KEY, subprotocols=[]).headers
    for extra in ({"X-A": "1"}, [("X-A", "1")], Headers([("X-A", "1")])):
        built = build_request("h", "/", KEY, extra_headers=extra, user_agent="ua")
        assert built.headers.items()[-2:] == [("User-Agent", "ua"), ("X-A", "1")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subprotocols": ["ok", "not ok"]},
        {"extra_headers": {"X": "a\r\nInjected: 1"}},
        {"origin": "http://a\nb"},
        {"user_agent": "ua\x00"},
    ],
)
def test_build_request_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_request("h", "/", KEY, **kwargs)  # type: ignore[arg-type]


def test_client_handshake_round_trip() -> None:
    key = generate_key()
    request = build_request("example.com", "/ws?x=1", key, subprotocols=["b", "a"])
    server_reader = RequestReader()
    received = server_reader.feed(request.serialize())
    assert received is not None
    assert received.path == "/ws?x=1"
    assert check_request(received) == key
    chosen = select_subprotocol(parse_subprotocols(received.headers), ["a", "b"])
    response = build_response(check_request(received), subprotocol=chosen)
    client_reader = ResponseReader()
    answer = client_reader.feed(response.serialize() + b"\x81\x00")
    assert answer is not None
    assert client_reader.leftover == b"\x81\x00"
    check_response(answer, key)
    assert check_subprotocol(answer, ["b", "a"]) == "a"


def test_check_response_accepts_rfc_example() -> None:
    check_response(rfc_response(), KEY)
    check_response(rfc_response(Upgrade=["WebSocket"], Connection=["upgrade"]), KEY)


def test_check_response_status() -> None:
    response = Response(403, "Forbidden", Headers(), b"no")
    with pytest.raises(InvalidStatus) as info:
        check_response(response, KEY)
    assert info.value.response is response


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"Upgrade": None}, InvalidUpgrade, "missing Upgrade"),
        ({"Upgrade": ["h2c"]}, InvalidUpgrade, "invalid Upgrade"),
        ({"Connection": None}, InvalidUpgrade, "missing Connection"),
        ({"Connection": ["close"]}, InvalidUpgrade, "invalid Connection"),
        ({"Sec_WebSocket_Accept": None}, InvalidHeader, "missing Sec-WebSocket-Accept"),
        ({"Sec_WebSocket_Accept": [ACCEPT, ACCEPT]}, InvalidHeader, "2 Sec-WebSocket-Accept"),
        ({"Sec_WebSocket_Accept": [accept_key("other")]}, InvalidHeader, "does not match"),
        ({"Sec_WebSocket_Accept": [ACCEPT.lower()]}, InvalidHeader, "does not match"),
        ({"Sec_WebSocket_Accept": [""]}, InvalidHeader, "empty Sec-WebSocket-Accept"),
    ],
)
def test_check_response_rejects(
    changes: dict[str, list[str] | None], error: type[InvalidHeader], fragment: str
) -> None:
    with pytest.raises(InvalidHeader, match=fragment) as info:
        check_response(rfc_response(**changes), KEY)
    assert type(info.value) is error
