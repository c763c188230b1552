"""Hostile mail at intake's real SMTP door while its HTTP API answers over real HTTP: no mail may freeze the event
loop. And the HTML reader is linear in its input, whatever the input."""

from __future__ import annotations

import asyncio
import math
import smtplib
import socket
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from services.intake.app import create_app as intake_app
from services.intake.mail import html_to_text
from services.intake.settings import IntakeSettings
from tests.support.http_server import serving
from tests.support.kafka import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_mail(subject: str, content_type: str, body_lines: list[str]) -> bytes:
    headers = [
        "From: Anna Svensson <anna.svensson@kiruna.se>",
        "To: ideas@localhost",
        f"Subject: {subject}",
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body_lines) + "\r\n").encode()


# 250 lines of 998 '<' (the longest line SMTP allows): about 244 KiB, just under the door's 256 KiB data limit.
HOSTILE = raw_mail("Fina ideer", "text/html", ["<" * 998] * 250)
PLAIN = raw_mail("Fler cykelstall", "text/plain", ["Fler cykelstall vid Kulturhuset, tack."])


def send(port: int, message: bytes, times: int = 3) -> int:
    """Send ``message`` ``times`` over one connection; the last reply code."""
    code = 0
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=120) as client:
        for _ in range(times):
            try:
                client.sendmail("anna.svensson@kiruna.se", ["ideas@localhost"], message)
                code = 250
            except smtplib.SMTPDataError as exc:
                code = exc.smtp_code
    return code


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def healthz_while(base_url: str, action: Callable[[], int], at_least: int = 200) -> tuple[int, list[float], int]:
    """Poll /healthz over real HTTP while ``action`` runs in a thread (and until ``at_least`` answers were timed);
    return what the action returned, every latency, and how many were measured while it ran. 200 answers, so that
    the p99 is not simply the one slowest answer of a busy machine (the frozen loop of old took 56 s: no doubt)."""
    latencies: list[float] = []
    during = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        await client.get("/healthz")  # the connection is open before the clock starts
        task = asyncio.ensure_future(anyio.to_thread.run_sync(action))
        while not task.done() or len(latencies) < at_least:
            running = not task.done()
            started = time.perf_counter()
            answer = await client.get("/healthz")
            latencies.append(time.perf_counter() - started)
            during += running
            assert answer.status_code == 200
            await asyncio.sleep(0.005)
        return await task, latencies, during


@pytest.mark.kafka
async def test_a_hostile_mail_does_not_freeze_the_http_api(service_settings, topics):
    port = free_port()
    app = intake_app(service_settings(IntakeSettings, smtp_port=port, rate_limit_per_minute=100_000))
    async with serving(app) as base_url:
        await eventually(app.state.runtime.kafka_connected.is_set, timeout=30)
        figures = {}
        for name, message, expected in (("plain", PLAIN, 250), ("hostile", HOSTILE, 550)):
            took: list[float] = []

            def timed(m: bytes = message, took: list[float] = took) -> int:
                started = time.perf_counter()
                try:
                    return send(port, m)
                finally:
                    took.append(time.perf_counter() - started)

            code, latencies, during = await healthz_while(base_url, timed)
            figures[name] = latencies
            print(
                f"\n3 {name} mails ({len(message)} bytes each): last SMTP {code}, all sent in {took[0]:.2f} s; "
                f"/healthz p50 {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, "
                f"p99 {p99(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
                f"({len(latencies)} answers, {during} while the mail was handled)"
            )
            assert code == expected  # the hostile one is refused: 249,500 characters of text is no description
        assert during >= 1  # the hostile mails were being read while /healthz was asked
        assert p99(figures["plain"]) < 0.2
        assert p99(figures["hostile"]) < 0.2


@pytest.mark.parametrize(
    "unit",
    ["<", "<a ", "</", "<a\n", "<!", "<?", "<a b='>", "<!--", "<script>", "&#", "<p>x</p>", "<a title='<b>'>"],
)
def test_reading_html_is_linear_whatever_the_input(unit):
    """Four times the input takes about four times as long (a quadratic reader would take sixteen)."""

    def seconds(size: int) -> float:
        markup = unit * (size // len(unit))
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            html_to_text(markup)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = seconds(32 * 1024), seconds(128 * 1024)
    assert large < 10 * small + 0.05, (small, large)


def test_html_becomes_the_text_a_reader_sees():
    markup = (
        "<html><head><style>p { color: red }</style><script>alert('<p>hi</p>')</script></head><body>"
        "<p>Hej&nbsp;alla &amp; <b>välkomna</b></p><!-- dold --><div>Rad två:   a &lt; b</div>"
        "<p>slut <3</p></body></html>"
    )
    assert html_to_text(markup) == "Hej alla & välkomna\n\nRad två: a < b\n\nslut <3"
    assert html_to_text("fjärr<b>värme</b>n<br>ny rad") == "fjärrvärmen\nny rad"
    assert html_to_text("<p>ett</p>\n\n\n<p>två</p>") == "ett\n\ntvå"
    assert html_to_text("text <a href='x'") == "text <a href='x'"  # no tag ends: the rest is text
    with pytest.raises(ValueError, match="too large"):
        html_to_text("x" * 11, max_chars=10)
