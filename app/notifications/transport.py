"""Where messages go: SES and SNS (`aws`), or files under DATA_DIR (`files`: nothing leaves the machine).

Logs never hold a contact detail or a message's text: the destination is masked
(`ja***@example.com`, `+44*******456`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Protocol

from app.config import Settings
from app.localfiles import write_private
from app.notifications.templates import RenderedMessage
from app.storage.records import NotificationChannel
from app.subscribers.fields import mask_email
from app.timeutil import utcnow

logger = logging.getLogger("app.notifications")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class MessageRefused(Exception):
    """The provider refused this message for good (bad address, unverified sender): never retried."""


class Transport(Protocol):
    def send(self, channel: NotificationChannel, notification_id: str, to: str, message: RenderedMessage) -> str:
        """Send (or write) the message; returns the provider's message id. MessageRefused for a
        message that can't ever be sent; any other error may pass on a later try."""
        ...


def masked_destination(channel: NotificationChannel, to: str) -> str:
    if channel is NotificationChannel.EMAIL:
        return mask_email(to)
    return to[:3] + "*" * max(0, len(to) - 6) + to[-3:]


class FileTransport:
    """Each message as `DATA_DIR/messages/<notification id>.json`, owner-only (it holds personal data)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, channel: NotificationChannel, notification_id: str, to: str, message: RenderedMessage) -> str:
        if not _SAFE_ID.fullmatch(notification_id):
            raise MessageRefused(f"not a file name: {notification_id!r}")
        content: dict[str, str] = {"id": notification_id, "channel": channel.value, "to": to}
        if channel is NotificationChannel.EMAIL:
            content.update(subject=message.subject, body=message.body)
        else:
            content["text"] = message.sms
        content["written_at"] = utcnow().isoformat()
        name = f"{notification_id}.json"
        write_private(self.folder / name, json.dumps(content, indent=2, ensure_ascii=False).encode())
        logger.info(
            "message written to a file instead of sent",
            extra={"file": name, "channel": channel.value, "destination": masked_destination(channel, to)},
        )
        return name


class AwsTransport:
    """Email through SES (from NOTIFICATIONS_EMAIL_SENDER), SMS through SNS; clients built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._email: object | None = None
        self._sms: object | None = None

    def send(self, channel: NotificationChannel, notification_id: str, to: str, message: RenderedMessage) -> str:
        from app import aws

        try:
            if channel is NotificationChannel.EMAIL:
                sender = self.settings.notifications_email_sender
                if sender is None:
                    raise MessageRefused("no NOTIFICATIONS_EMAIL_SENDER")
                if not isinstance(self._email, aws.SesEmail):
                    self._email = aws.SesEmail(sender, region=self.settings.aws_region)
                return self._email.send(to, message.subject, message.body)
            if not isinstance(self._sms, aws.SnsSms):
                self._sms = aws.SnsSms(
                    region=self.settings.aws_region, sender_id=self.settings.notifications_sms_sender_id
                )
            return self._sms.send(to, message.sms)
        except aws.MessageRefused as exc:
            raise MessageRefused(str(exc)) from exc


def create_transport(settings: Settings) -> Transport:
    if settings.notification_transport == "files":
        return FileTransport(settings.data_dir / "messages")
    return AwsTransport(settings)
