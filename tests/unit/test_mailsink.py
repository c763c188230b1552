"""The local mail sink keeps every delivery: a repeat of one message in the same second is a file of its own, so
that counting the files (make chaos) sees a mail sent twice."""

from __future__ import annotations

from email.message import EmailMessage
from types import SimpleNamespace

from services.notifications.mailsink import EmlWriter


async def test_the_same_message_twice_in_one_second_is_two_files(tmp_path):
    message = EmailMessage()
    message["Message-ID"] = "<same@kiruna.se>"
    message.set_content("Hej!")
    envelope = SimpleNamespace(content=message.as_bytes(), rcpt_tos=["anna@kiruna.se"], mail_from="i@kiruna.se")
    writer = EmlWriter(tmp_path)
    for _ in range(3):
        assert await writer.handle_DATA(None, None, envelope) == "250 Message accepted for delivery"
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3 and all("same_kiruna.se" in f.name for f in files)
