"""A minimal SMTP sink for the benchmark: accepts every mail and throws it away.

``python -m bench.mailsink <port>``. Notifications e-mails every submitter and officer; without a server its
delivery queue would retry against a closed port. This answers just enough SMTP for aiosmtplib (EHLO, MAIL,
RCPT, DATA, RSET, NOOP, QUIT) at a fraction of aiosmtpd's cost, because it shares the cores with what is
measured. On SIGTERM it prints ``mails=<n>``.
"""

from __future__ import annotations

import asyncio
import signal
import sys

_REPLIES = {
    b"EHLO": b"250-bench-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432\r\n",
    b"HELO": b"250 bench-sink\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 Bye\r\n",
}


class SinkProtocol(asyncio.Protocol):
    mails = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.in_data = False
        transport.write(b"220 bench-sink ESMTP\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                del self.buffer[: end + 5]
                self.in_data = False
                SinkProtocol.mails += 1
                self.transport.write(b"250 OK queued\r\n")  # type: ignore[attr-defined]
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            self.transport.write(_REPLIES.get(verb, b"250 OK\r\n"))  # type: ignore[attr-defined]
            if verb == b"DATA":
                self.in_data = True
            elif verb == b"QUIT":
                self.transport.close()
                return


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    print(f"mails={SinkProtocol.mails}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
