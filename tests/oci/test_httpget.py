"""oci/actions/httpget.py against a keep-alive server on 127.0.0.1: lookups, connections, redirects, errors."""

from __future__ import annotations

import concurrent.futures
import http.server
import socket
import threading
import urllib.error

import pytest

from oci.actions.httpget import HttpGetter

BODY = b"x" * 100_000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: set = set()

    def setup(self):
        super().setup()
        Handler.connections.add(self.client_address)

    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/file"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/close-after":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"ok")
            self.close_connection = True
        else:  # a kept-alive 404 (send_error would close the connection)
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.connections = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def lookups(monkeypatch):
    seen = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    return seen


def read(getter: HttpGetter, url: str) -> bytes:
    with getter.get(url) as response:
        return response.read()


def test_many_downloads_share_one_lookup_and_a_connection_per_thread(server, lookups):
    getter = HttpGetter(timeout=10)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda i: read(getter, f"{server}/file{i}"), range(40)))
    assert bodies == [BODY] * 40
    assert lookups == ["127.0.0.1"]
    assert 1 <= len(Handler.connections) <= 4


def test_a_redirect_is_followed(server):
    assert read(HttpGetter(timeout=10), f"{server}/moved") == BODY


def test_a_missing_file_is_an_http_error_and_the_connection_stays_usable(server):
    getter = HttpGetter(timeout=10)
    with pytest.raises(urllib.error.HTTPError) as raised:
        read(getter, f"{server}/missing")
    assert raised.value.code == 404
    assert read(getter, f"{server}/file") == BODY
    assert len(Handler.connections) == 1


def test_a_body_left_unread_closes_its_connection(server):
    getter = HttpGetter(timeout=10)
    with getter.get(f"{server}/file") as response:
        assert response.read(10) == b"x" * 10
    assert read(getter, f"{server}/file") == BODY
    assert len(Handler.connections) == 2


def test_a_connection_the_server_closed_is_opened_again(server):
    getter = HttpGetter(timeout=10)
    assert read(getter, f"{server}/close-after") == b"ok"
    assert read(getter, f"{server}/file") == BODY
    assert len(Handler.connections) == 2


def test_nothing_listening_is_a_url_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(urllib.error.URLError) as raised:
        read(HttpGetter(timeout=5), f"http://127.0.0.1:{port}/file")
    assert isinstance(raised.value.reason, ConnectionRefusedError)
