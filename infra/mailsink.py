"""A local SMTP server that keeps every message, for development, demos and tests.

Real SMTP on loopback, so the sender is exercised exactly as in production; messages land as
numbered `.eml` files plus one JSON line each in `index.jsonl`, which the portal's outbox page
and the tests read back with `read_messages`.

    python -m infra.mailsink --port 1025 --dir .rprp/mail
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

INDEX = "index.jsonl"


@dataclass(frozen=True)
class StoredMessage:
    received_at: datetime
    sender: str
    recipients: list[str]
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    file: Path


class _Store:
    """aiosmtpd handler: write each message to disk before answering 250, so none is lost;
    refuse the recipients in `refused` (550), as a real server refuses an unknown mailbox."""

    def __init__(self, directory: Path, refused: set[str]) -> None:
        self.directory = directory
        self.refused = refused
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _next_number(self) -> int:
        numbers = [int(p.stem) for p in self.directory.glob("*.eml") if p.stem.isdigit()]
        return max(numbers, default=0) + 1

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        parsed = message_from_bytes(raw, policy=email_policy.default)
        with self.lock:
            path = self.directory / f"{self._next_number():06d}.eml"
            path.write_bytes(raw)
            entry = {
                "time": datetime.now(UTC).isoformat(),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(parsed.get("Subject", "")),
                "file": path.name,
            }
            with (self.directory / INDEX).open("a", encoding="utf-8") as index:
                index.write(json.dumps(entry) + "\n")
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """Controller that also works with port 0: it learns the port the OS picked."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class MailSink:
    """A loopback SMTP server storing every message it accepts in `directory`.

    `port=0` picks a free port; read it from `.port` after `start()`. Addresses added to
    `refused` (lower case) are refused from then on, so tests can see mail the server rejects.
    """

    def __init__(self, directory: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.directory = Path(directory)
        self.refused: set[str] = set()
        self.host = host
        self._requested_port = port
        self._controller: _Controller | None = None

    @property
    def port(self) -> int:
        if self._controller is None:
            return self._requested_port
        return int(self._controller.port)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> MailSink:
        if self._controller is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        controller = _Controller(_Store(self.directory, self.refused), hostname=self.host,
                                 port=self._requested_port, server_hostname="rprp-mailsink")
        controller.start()
        self._controller = controller
        # Restart on the same port, so a test can take the server down and bring it back.
        self._requested_port = int(controller.port)
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def messages(self) -> list[StoredMessage]:
        return read_messages(self.directory)

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


def read_messages(directory: Path) -> list[StoredMessage]:
    """Every stored message, oldest first; an empty list if nothing has arrived."""
    directory = Path(directory)
    index = directory / INDEX
    if not index.exists():
        return []
    messages = []
    for line in index.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        path = directory / entry["file"]
        parsed = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(StoredMessage(
            received_at=datetime.fromisoformat(entry["time"]),
            sender=entry["from"],
            recipients=list(entry["to"]),
            subject=entry["subject"],
            text=_part(parsed, "plain"),
            html=_part(parsed, "html"),
            # A long header is folded onto its next line; Python reads that back with the
            # fold's leading space, so strip it (long outbox keys would otherwise not match).
            headers={name: str(value).strip() for name, value in parsed.items()},
            file=path,
        ))
    return messages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.mailsink",
                                     description="Local SMTP server that keeps every message.")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to keep messages (default: <data dir>/mail)")
    args = parser.parse_args(argv)
    directory = args.dir
    if directory is None:
        from infra.settings import get_settings

        directory = get_settings().resolved_data_dir / "mail"
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sink = MailSink(directory, port=args.port, host=args.host)
    with sink:
        print(f"Mail sink on {sink.host}:{sink.port}, storing in {sink.directory}. Ctrl-C to stop.",
              flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
