"""One address for people: nginx (deploy/nginx/nginx.sh, from the system's packages) in front of four fake services,
each answering with its own name and echoing the method, path and forwarding headers it got. Every row of the route
table, the headers, streaming of server-sent events, the size limit, nginx's own 404 and the bilingual page for a
service that is down."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "nginx" / "nginx.sh"
SERVICES = ("intake", "routing", "notifications", "analytics")
PORT_VARS = {name: f"{name.upper()}_PORT" for name in SERVICES}
RETRY_AFTER_S = 17
T = TypeVar("T")


# --- four fake services ------------------------------------------------------------------------------------------


class FakeService:
    """A small threaded HTTP/1.1 server standing in for one service. ``/.../upstream-503`` answers like intake does
    while Kafka is down; ``.../stream`` and ``/my/feed/...`` stream server-sent events until :meth:`release`."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self._releases: dict[str, threading.Event] = {}
        self.closed_streams: set[str] = set()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Like a process that exits: no new connections, and the open ones (nginx keeps some alive) are closed."""
        for event in self._releases.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    def release_event(self, token: str) -> threading.Event:
        with self._lock:
            return self._releases.setdefault(token, threading.Event())

    def release(self, token: str) -> None:
        self.release_event(token).set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.append(self.connection)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                if path.endswith("/stream") or path.startswith(("/my/feed/", "/en/my/feed/")):
                    self._stream()
                    return
                if path.endswith("/upstream-503"):
                    self._send(503, {"detail": "Kafka is not answering; try again"}, {"Retry-After": "7"})
                    return
                echoed = {
                    "service": fake.name,
                    "method": self.command,
                    "path": self.path,
                    "body_bytes": len(body),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
                self._send(200, echoed)

            def _send(self, status: int, payload: dict, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Fake-Service", fake.name)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _stream(self) -> None:
                token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
                release = fake.release_event(token)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.send_header("X-Fake-Service", fake.name)
                self.end_headers()
                self.close_connection = True
                self.wfile.write(f"event: hello\ndata: {fake.name}\n\n".encode())
                self.wfile.flush()
                release.wait(timeout=30)
                with contextlib.suppress(OSError):
                    self.wfile.write(b"event: bye\ndata: done\n\n")
                    self.wfile.flush()
                fake.closed_streams.add(token)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

        return Handler


# --- the proxy ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script(command: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proxy:
    url: str
    port: int
    env: dict[str, str]
    var: Path
    fakes: dict[str, FakeService]

    def client(self, timeout: httpx.Timeout | float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)


@contextlib.contextmanager
def running_proxy(var: Path, ports: dict[str, int]) -> Iterator[Proxy]:
    """nginx started by the project's script with a throwaway VAR_DIR and a free port; stopped at the end."""
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "PROXY_PORT": str(port),
        "NGINX_RETRY_AFTER_S": str(RETRY_AFTER_S),
        "NGINX_WAIT_S": "20",
        **{PORT_VARS[name]: str(p) for name, p in ports.items()},
    }
    try:
        installed = script("install", env, timeout=600)
    except subprocess.TimeoutExpired as exc:
        pytest.skip(f"nginx could not be installed by deploy/nginx/nginx.sh: {exc!r}")
    if installed.returncode != 0:
        pytest.skip(f"nginx could not be installed by deploy/nginx/nginx.sh: {installed.stderr.strip()[-500:]}")
    try:
        started = script("start", env)
        assert started.returncode == 0, started.stderr
        ready = script("wait", env)
        assert ready.returncode == 0, ready.stderr
        yield Proxy(f"http://127.0.0.1:{port}", port, env, var, {})
    finally:
        stopped = script("stop", env)
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    fakes = {name: FakeService(name) for name in SERVICES}
    try:
        with running_proxy(tmp_path_factory.mktemp("proxy"), {n: f.port for n, f in fakes.items()}) as running:
            running.fakes.update(fakes)
            yield running
    finally:
        for fake in fakes.values():
            fake.stop()


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


# --- the route table ----------------------------------------------------------------------------------------------

ROUTES = [
    # sign-in, on intake for the one address
    ("GET", "/auth/sign-in?next=/en", "intake", "/auth/sign-in?next=/en"),
    ("GET", "/auth/callback?code=abc&state=xyz", "intake", "/auth/callback?code=abc&state=xyz"),
    ("POST", "/auth/sign-out", "intake", "/auth/sign-out"),
    # the web form and its POST
    ("GET", "/", "intake", "/"),
    ("GET", "/en", "intake", "/en"),
    ("POST", "/ideas", "intake", "/ideas"),
    # form posts from a status page
    ("POST", "/ideas/4f1c9a/support", "intake", "/ideas/4f1c9a/support"),
    ("POST", "/ideas/4f1c9a/comments", "intake", "/ideas/4f1c9a/comments"),
    ("POST", "/ideas/4f1c9a/follow", "intake", "/ideas/4f1c9a/follow"),
    ("POST", "/en/ideas/4f1c9a/support", "intake", "/en/ideas/4f1c9a/support"),
    ("POST", "/en/ideas/4f1c9a/follow", "intake", "/en/ideas/4f1c9a/follow"),
    ("POST", "/ideas/4f1c9a/edit", "intake", "/ideas/4f1c9a/edit"),
    ("POST", "/ideas/4f1c9a/withdraw", "intake", "/ideas/4f1c9a/withdraw"),
    ("POST", "/en/ideas/4f1c9a/assign", "intake", "/en/ideas/4f1c9a/assign"),
    ("POST", "/ideas/4f1c9a/merge", "intake", "/ideas/4f1c9a/merge"),
    ("GET", "/ideas", "analytics", "/ideas"),
    ("GET", "/ideas?q=sn%C3%B6r%C3%B6jning&page=2", "analytics", "/ideas?q=sn%C3%B6r%C3%B6jning&page=2"),
    ("GET", "/en/ideas", "analytics", "/en/ideas"),
    ("POST", "/en/ideas", "intake", "/en/ideas"),
    ("GET", "/challenges", "analytics", "/challenges"),
    ("GET", "/challenges/9a7b", "analytics", "/challenges/9a7b"),
    ("GET", "/en/challenges/9a7b", "analytics", "/en/challenges/9a7b"),
    ("GET", "/challenges/new", "intake", "/challenges/new"),
    ("POST", "/challenges/new", "intake", "/challenges/new"),
    ("GET", "/en/challenges/new", "intake", "/en/challenges/new"),
    ("GET", "/api/v1/challenges", "analytics", "/api/v1/challenges"),
    ("GET", "/api/v1/challenges/9a7b", "analytics", "/api/v1/challenges/9a7b"),
    ("POST", "/api/v1/challenges", "intake", "/api/v1/challenges"),
    ("PATCH", "/api/v1/ideas/4f1c9a", "intake", "/api/v1/ideas/4f1c9a"),
    ("POST", "/api/v1/ideas/4f1c9a/withdraw", "intake", "/api/v1/ideas/4f1c9a/withdraw"),
    ("POST", "/api/v1/ideas/4f1c9a/assignment", "intake", "/api/v1/ideas/4f1c9a/assignment"),
    ("GET", "/api/v1/ideas/similar?title=x", "analytics", "/api/v1/ideas/similar?title=x"),
    # pages of the read side
    ("GET", "/ideas/4f1c9a", "analytics", "/ideas/4f1c9a"),
    ("GET", "/en/ideas/4f1c9a?lang=en", "analytics", "/en/ideas/4f1c9a?lang=en"),
    ("GET", "/ideas/4f1c9a/support/more", "analytics", "/ideas/4f1c9a/support/more"),
    ("GET", "/dashboard", "analytics", "/dashboard"),
    ("GET", "/dashboard?org=kirunabostader", "analytics", "/dashboard?org=kirunabostader"),
    ("GET", "/en/dashboard", "analytics", "/en/dashboard"),
    ("GET", "/inbox/tekniska-verken", "analytics", "/inbox/tekniska-verken"),
    ("GET", "/en/inbox/kiruna-kommun", "analytics", "/en/inbox/kiruna-kommun"),
    ("GET", "/my/ideas", "analytics", "/my/ideas"),
    ("GET", "/en/my/ideas", "analytics", "/en/my/ideas"),
    # a person's feed and preferences
    ("GET", "/my/feed", "notifications", "/my/feed"),
    ("GET", "/en/my/feed", "notifications", "/en/my/feed"),
    ("GET", "/my/preferences", "notifications", "/my/preferences"),
    ("POST", "/my/preferences", "notifications", "/my/preferences"),
    ("POST", "/my/preferences/email", "notifications", "/my/preferences/email"),
    ("GET", "/en/my/preferences", "notifications", "/en/my/preferences"),
    # a person's data ("Mina uppgifter"): the page, its download and the erasure, on intake
    ("GET", "/my/data", "intake", "/my/data"),
    ("GET", "/my/data/export", "intake", "/my/data/export"),
    ("POST", "/my/data/erasure", "intake", "/my/data/erasure"),
    ("GET", "/en/my/data", "intake", "/en/my/data"),
    ("GET", "/en/my/data/export", "intake", "/en/my/data/export"),
    ("POST", "/en/my/data/erasure", "intake", "/en/my/data/erasure"),
    # the pages' static files: shared ones (the same on every service) from intake, a service's own from it
    ("GET", "/static/site.css", "intake", "/static/site.css"),
    ("GET", "/static/docs/swagger-ui.css", "intake", "/static/docs/swagger-ui.css"),
    ("GET", "/static/intake/form.css", "intake", "/static/intake/form.css"),
    ("GET", "/static/analytics/inbox.js", "analytics", "/static/analytics/inbox.js"),
    ("GET", "/static/notifications/notifications.css", "notifications", "/static/notifications/notifications.css"),
    # the ideas API: writes to intake, reads to analytics
    ("GET", "/api/v1/ideas", "analytics", "/api/v1/ideas"),
    ("GET", "/api/v1/ideas?page=2", "analytics", "/api/v1/ideas?page=2"),
    ("POST", "/api/v1/ideas", "intake", "/api/v1/ideas"),
    ("GET", "/api/v1/ideas/4f1c9a", "analytics", "/api/v1/ideas/4f1c9a"),
    ("POST", "/api/v1/ideas/4f1c9a/status", "intake", "/api/v1/ideas/4f1c9a/status"),
    ("POST", "/api/v1/ideas/4f1c9a/comments", "intake", "/api/v1/ideas/4f1c9a/comments"),
    ("PUT", "/api/v1/ideas/4f1c9a/support", "intake", "/api/v1/ideas/4f1c9a/support"),
    ("DELETE", "/api/v1/ideas/4f1c9a/support", "intake", "/api/v1/ideas/4f1c9a/support"),
    # people, unsubscribe, digests
    ("GET", "/api/v1/people/me/ideas", "analytics", "/api/v1/people/me/ideas"),
    ("GET", "/api/v1/people/me/feed", "notifications", "/api/v1/people/me/feed"),
    ("GET", "/api/v1/people/me/preferences", "notifications", "/api/v1/people/me/preferences"),
    ("PUT", "/api/v1/people/me/preferences", "notifications", "/api/v1/people/me/preferences"),
    ("GET", "/api/v1/people/me/export", "intake", "/api/v1/people/me/export"),
    ("POST", "/api/v1/people/me/erasure", "intake", "/api/v1/people/me/erasure"),
    (
        "GET",
        "/api/v1/people/per.niemi@kirunabostader.se/export",
        "intake",
        "/api/v1/people/per.niemi@kirunabostader.se/export",
    ),
    (
        "POST",
        "/api/v1/people/per.niemi@kirunabostader.se/erasure",
        "intake",
        "/api/v1/people/per.niemi@kirunabostader.se/erasure",
    ),
    ("GET", "/api/v1/people/me/exports", "notifications", "/api/v1/people/me/exports"),
    ("GET", "/api/v1/unsubscribe?token=t0k", "notifications", "/api/v1/unsubscribe?token=t0k"),
    ("POST", "/api/v1/unsubscribe", "notifications", "/api/v1/unsubscribe"),
    ("POST", "/api/v1/digests/2026-03-02", "notifications", "/api/v1/digests/2026-03-02"),
    # figures, routing and the catalogue
    ("GET", "/api/v1/stats/funnel", "analytics", "/api/v1/stats/funnel"),
    ("GET", "/api/v1/route?text=sn%C3%B6r%C3%B6jningen", "routing", "/api/v1/route?text=sn%C3%B6r%C3%B6jningen"),
    ("GET", "/api/v1/catalogue", "routing", "/api/v1/catalogue"),
    # operators: each service whole, prefix stripped
    ("GET", "/services/intake/docs", "intake", "/docs"),
    ("GET", "/services/intake/openapi.json", "intake", "/openapi.json"),
    ("GET", "/services/routing/asyncapi", "routing", "/asyncapi"),
    ("GET", "/services/routing/metrics", "routing", "/metrics"),
    ("GET", "/services/notifications/healthz", "notifications", "/healthz"),
    ("GET", "/services/analytics/metrics?name=x", "analytics", "/metrics?name=x"),
    ("POST", "/services/intake/api/v1/ideas", "intake", "/api/v1/ideas"),
]


@pytest.mark.parametrize(
    ("method", "path", "service", "upstream_path"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES]
)
def test_route_table(proxy: Proxy, method: str, path: str, service: str, upstream_path: str) -> None:
    with proxy.client() as client:
        response = client.request(method, path, content=b"title=x" if method in {"POST", "PUT"} else None)
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert (echoed["service"], echoed["method"], echoed["path"]) == (service, method, upstream_path)


def test_head_of_an_idea_reads_from_analytics(proxy: Proxy) -> None:
    with proxy.client() as client:
        response = client.head("/api/v1/ideas/4f1c9a")
    assert response.status_code == 200
    assert response.headers["x-fake-service"] == "analytics"


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/ideasx",
        "/en/other",
        "/dashboard/extra",
        "/my/feeds",
        "/my",
        "/my/datas",
        "/api/v1/unknown",
        "/api/v1/routes",
        "/api/v2/ideas",
        "/services/other/metrics",
    ],
)
def test_anything_else_is_a_json_404_from_nginx(proxy: Proxy, path: str) -> None:
    with proxy.client() as client:
        response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "x-fake-service" not in response.headers
    assert response.json() == {"detail": f"No such page: {path}"}


def test_a_404_never_echoes_what_would_need_escaping(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b'GET /x"y\\z HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert json.loads(body) == {"detail": "No such page: (this address)"}


@pytest.mark.parametrize("path", ["/auth", "/inbox", "/services/intake"])
def test_a_prefix_without_its_slash_is_redirected_relatively(proxy: Proxy, path: str) -> None:
    with proxy.client() as client:
        response = client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == f"{path}/"


def test_healthz_is_answered_by_nginx_itself(proxy: Proxy) -> None:
    with proxy.client() as client:
        response = client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert "x-fake-service" not in response.headers
    assert response.headers["server"] == "nginx"  # server_tokens off: no version


# --- headers ------------------------------------------------------------------------------------------------------


def test_host_and_forwarding_headers_reach_the_service(proxy: Proxy) -> None:
    with proxy.client() as client:
        headers = client.get("/api/v1/ideas/4f1c9a").json()["headers"]
    assert headers["host"] == f"127.0.0.1:{proxy.port}"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    assert "x-forwarded-prefix" not in headers
    assert headers.get("connection", "keep-alive").lower() != "close"


def test_a_tls_proxy_in_front_is_believed_and_its_chain_kept(proxy: Proxy) -> None:
    sent = {
        "Host": "innovation.kiruna.se",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "10.20.30.40",
        "X-Request-ID": "req-2026.kiruna:42",
    }
    with proxy.client() as client:
        headers = client.post("/ideas", headers=sent, content=b"title=x").json()["headers"]
    assert headers["host"] == "innovation.kiruna.se"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "10.20.30.40, 127.0.0.1"
    assert headers["x-request-id"] == "req-2026.kiruna:42"


def test_only_https_or_the_real_scheme_is_forwarded_and_odd_request_ids_are_replaced(proxy: Proxy) -> None:
    with proxy.client() as client:
        headers = client.get(
            "/dashboard", headers={"X-Forwarded-Proto": "gopher", "X-Request-ID": "<script>alert(1)</script>"}
        ).json()["headers"]
    assert headers["x-forwarded-proto"] == "http"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_operator_paths_say_which_prefix_was_stripped(proxy: Proxy) -> None:
    with proxy.client() as client:
        echoed = client.get("/services/routing/metrics").json()
    assert (echoed["service"], echoed["path"]) == ("routing", "/metrics")
    assert echoed["headers"]["x-forwarded-prefix"] == "/services/routing"


def test_services_own_errors_pass_through_untouched(proxy: Proxy) -> None:
    with proxy.client() as client:
        response = client.post("/api/v1/ideas/upstream-503", content=b"{}")
    assert response.status_code == 503
    assert response.headers["x-fake-service"] == "intake"
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"detail": "Kafka is not answering; try again"}


def test_bodies_up_to_one_megabyte_pass_and_larger_ones_get_a_json_413(proxy: Proxy) -> None:
    with proxy.client() as client:
        ok = client.post("/api/v1/ideas", content=b"x" * 900_000)
        too_large = client.post("/api/v1/ideas", content=b"x" * 1_200_000)
    assert ok.status_code == 200
    assert (ok.json()["service"], ok.json()["body_bytes"]) == ("intake", 900_000)
    assert too_large.status_code == 413
    assert "1 MB" in too_large.json()["detail"]


# --- server-sent events -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/v1/people/me/stream", "/my/feed/stream", "/en/my/feed/events"],
)
def test_server_sent_events_are_streamed_not_buffered(proxy: Proxy, path: str) -> None:
    token = f"t{time.monotonic_ns()}"
    fake = proxy.fakes["notifications"]
    with (
        proxy.client(timeout=httpx.Timeout(10, read=5)) as client,
        client.stream("GET", f"{path}?token={token}", headers={"Accept": "text/event-stream"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        seen: list[str] = []
        while "data: notifications" not in seen:
            seen.append(next(lines))  # a read timeout here means nginx buffered the stream
        # The first event arrived while the service still holds the stream open.
        assert token not in fake.closed_streams
        fake.release(token)
        rest = list(lines)
    assert "data: done" in rest


# --- a service that is down -------------------------------------------------------------------------------------


def test_a_stopped_service_gets_the_bilingual_page_and_comes_back(proxy: Proxy) -> None:
    intake = proxy.fakes["intake"]
    port = intake.port
    intake.stop()
    try:
        with proxy.client() as client:
            response = client.post("/api/v1/ideas", content=b"{}")
            reads = client.get("/api/v1/ideas")
    finally:
        proxy.fakes["intake"] = FakeService("intake", port)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    page = response.text
    assert "idéinlämningen" in page and "idea intake" in page
    assert page.index("Tillfälligt otillgänglig</h1>") < page.index("Temporarily unavailable</h2>")
    assert "Försök igen om en liten stund" in page and "try again shortly" in page
    assert reads.status_code == 200 and reads.json()["service"] == "analytics"

    def back() -> None:
        with proxy.client() as client:
            again = client.post("/api/v1/ideas", content=b"{}")
        assert again.status_code == 200 and again.json()["service"] == "intake"

    eventually(back)


def test_each_part_is_named_when_down_and_stop_stops_nginx(tmp_path: Path) -> None:
    closed = {name: free_port() for name in SERVICES}
    expected = {
        "/": ("idéinlämningen", "idea intake"),
        "/api/v1/catalogue": ("fördelningen av idéer", "idea routing"),
        "/my/feed": ("aviseringarna", "notifications"),
        "/dashboard": ("uppföljningen och idésidorna", "follow-up and the idea pages"),
    }
    with running_proxy(tmp_path, closed) as down:
        rendered = (tmp_path / "nginx" / "nginx.conf").read_text()
        assert not re.search(r"@[A-Z_]+@", rendered)
        with down.client() as client:
            for path, (sv, en) in expected.items():
                response = client.get(path)
                assert response.status_code == 503, path
                assert sv in response.text and en in response.text, path
        status = script("status", down.env)
        assert status.returncode == 0 and "running" in status.stdout
        again = script("start", down.env)
        assert again.returncode == 0 and "already running" in again.stderr
        reloaded = script("reload", down.env)
        assert reloaded.returncode == 0, reloaded.stderr
        assert script("wait", down.env).returncode == 0
        pid = int((tmp_path / "run" / "nginx.pid").read_text())
    assert not (tmp_path / "run" / "nginx.pid").exists()
    assert script("status", down.env).returncode == 3

    def gone() -> None:
        assert not answers(down.port)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    eventually(gone)
    assert (tmp_path / "log" / "nginx-access.log").read_text().count("service=") >= len(expected)


def upstream_servers(config: str, service: str) -> list[str]:
    block = re.search(rf"upstream {service} \{{(.*?)\}}", config, re.S)
    assert block is not None, f"no upstream {service} in the rendered configuration"
    return re.findall(r"server (127\.0\.0\.1:\d+)", block.group(1))


def test_the_proxy_lists_every_replica_of_a_service(tmp_path: Path) -> None:
    """<SERVICE>_REPLICAS (make run): replica i answers on the service's port + 100·i, and the upstream lists each."""
    base = {**os.environ, "VAR_DIR": str(tmp_path), "ROUTING_PORT": "18001", "INTAKE_PORT": "18000"}
    config = tmp_path / "nginx" / "nginx.conf"  # where `render` writes it (and prints its path)
    one = script("render", base)
    assert one.returncode == 0, one.stderr
    assert upstream_servers(config.read_text(), "routing") == ["127.0.0.1:18001"]  # the default: one of each
    three = script("render", {**base, "ROUTING_REPLICAS": "3"})
    assert three.returncode == 0, three.stderr
    rendered = config.read_text()
    assert upstream_servers(rendered, "routing") == ["127.0.0.1:18001", "127.0.0.1:18101", "127.0.0.1:18201"]
    assert upstream_servers(rendered, "intake") == ["127.0.0.1:18000"]
    refused = script("render", {**base, "ROUTING_REPLICAS": "0"})
    assert refused.returncode == 2 and "ROUTING_REPLICAS" in refused.stderr
