"""The local mail sink of `make run` writes every message it receives as an .eml file."""

from __future__ import annotations

import asyncio
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

import aiosmtplib

from services.notifications.mailsink import serve
from tests.support.kafka import eventually


async def test_the_mail_sink_writes_each_message_as_an_eml_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = asyncio.Event()
    server = asyncio.create_task(serve("127.0.0.1", port, tmp_path / "mail", stop))
    try:
        message = EmailMessage()
        message["From"] = "innovation@kiruna.se"
        message["To"] = "anna@kiruna.se, per@kiruna.se"
        message["Subject"] = "Din idé ”Fjärrvärme” har skickats"
        message["Message-ID"] = "<abc-123@kiruna.se>"
        message.set_content("Hej!\nDin idé har skickats till Tekniska Verken.")

        async def send():
            try:
                await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)
                return True
            except aiosmtplib.SMTPConnectError:
                return False

        await eventually(send, timeout=10)
        files = sorted((tmp_path / "mail").glob("*.eml"))
        assert len(files) == 2 and all("abc-123" in f.name for f in files)
        written = message_from_bytes(files[0].read_bytes(), policy=policy.default)
        assert written["Subject"] == "Din idé ”Fjärrvärme” har skickats"
        assert "Tekniska Verken" in written.get_content()
    finally:
        stop.set()
        await server
