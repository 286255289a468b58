"""Imports every module that registers an event consumer (`relay.event_consumer`): the relay
imports this before relaying, so a consumer can't be missing because nothing imported it."""

from __future__ import annotations

import app.webhooks.consumer  # noqa: F401 - registers the "webhooks" consumer
from app.notifications import consumer as notifications  # noqa: F401 - registers its consumer and task
