"""Notification settings: where messages go by default, and what can't work is refused at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.support import make_settings

SECRET = "x" * 40


def test_local_and_test_write_files_and_aws_sends() -> None:
    assert make_settings().notification_transport == "files"
    assert make_settings(app_env="local").notification_channels == {"email", "sms"}
    deployed = make_settings(app_env="prod", jwt_secret=SECRET)
    assert deployed.notification_transport == "aws"
    assert deployed.notification_channels == {"sms"}  # no sender address: no email
    with_sender = make_settings(app_env="prod", jwt_secret=SECRET, notifications_email_sender="no-reply@example.com")
    assert with_sender.notification_channels == {"email", "sms"}


def test_email_with_ses_needs_a_sender() -> None:
    with pytest.raises(ValidationError, match="NOTIFICATIONS_EMAIL_SENDER is required"):
        make_settings(app_env="prod", jwt_secret=SECRET, notifications_channels="email,sms")
    assert make_settings(notifications_channels=" SMS ").notification_channels == {"sms"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("notifications_email_sender", "Portal <no-reply@example.com>"),
        ("notifications_email_sender", "no-reply@example.com\r\nBcc: x@example.com"),
        ("notifications_sms_sender_id", "12345"),
        ("notifications_sms_sender_id", "PortalSender12"),
        ("notifications_channels", "email,fax"),
        ("notifications_reminder_lead_minutes", -1),
        ("notifications_claim_seconds", 5),
    ],
)
def test_bad_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        make_settings(**{name: value})
