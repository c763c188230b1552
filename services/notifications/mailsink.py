"""A local mail sink for ``make run``: an SMTP server (aiosmtpd) on 127.0.0.1:1025 that accepts every message and
writes it as an ``.eml`` file under ``var/mail/`` (open one with any mail program, or read it as text).

    python -m services.notifications.mailsink [--host 127.0.0.1] [--port 1025] [--dir var/mail]

The same can be set with ``MAILSINK_HOST``, ``MAILSINK_PORT`` and ``MAILSINK_DIR``. Nothing is relayed anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.smtp import SMTP


class EmlWriter:
    """aiosmtpd handler: one .eml file per recipient of every message, named by time and Message-ID (a repeat
    within the same second gets its own file, numbered)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        message = message_from_bytes(content, policy=policy.default)
        ident = re.sub(r"[^A-Za-z0-9._-]+", "_", str(message.get("Message-ID", "")).strip("<> ")) or "no-id"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for rcpt in envelope.rcpt_tos:
            name = f"{stamp}-{ident}-{re.sub(r'[^A-Za-z0-9._@-]+', '_', rcpt)}"
            header = f"X-Mailsink-Envelope-From: {envelope.mail_from}\r\nX-Mailsink-Envelope-To: {rcpt}\r\n".encode()
            await asyncio.to_thread(self._write_new, name, header + content)
        return "250 Message accepted for delivery"

    def _write_new(self, name: str, data: bytes) -> Path:
        """Never over an earlier file: the same message delivered twice in one second (a retry, a duplicate) is
        two files, so that counting them (make chaos) sees the repeat."""
        for copy in range(1, 10_000):
            path = self.directory / (f"{name}.eml" if copy == 1 else f"{name}-{copy}.eml")
            try:
                with path.open("xb") as out:
                    out.write(data)
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"{name}: too many copies")


async def serve(host: str, port: int, directory: Path, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (by default: until SIGINT or SIGTERM)."""
    handler = EmlWriter(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="mailsink.local"), host=host, port=port)
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    print(f"mailsink: SMTP on {host}:{port}, writing .eml files to {directory}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notifications.mailsink", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default=os.environ.get("MAILSINK_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAILSINK_PORT", "1025")))
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("MAILSINK_DIR", "var/mail")))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
