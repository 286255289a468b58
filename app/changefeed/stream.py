"""Relaying a batch of DynamoDB Streams records (the table's stream, filtered to inserted event
items): to the bus, to every consumer, then out of the outbox.

The answer is Lambda's partial batch response: the first record not relayed is named, and Lambda
resends the shard from that record on. Records of a shard are in commit order, and a subject's
events are one partition, i.e. one shard: so a subject's later events wait behind its failed one.
Other subjects' events after it are sent again too; consumers de-duplicate by event id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from app.changefeed.bus import event_publisher
from app.changefeed.relay import relay
from app.runtime import Runtime
from app.storage.records import DomainEvent

logger = logging.getLogger("app.changefeed.stream")


def relay_stream_records(records: Sequence[Mapping[str, Any]], runtime: Runtime) -> dict[str, Any]:
    import app.changefeed.consumers  # noqa: F401  (registers every consumer before the first relay)
    from app.storage.dynamodb.events import event_from_stream_record

    decoded: list[tuple[str, DomainEvent]] = []
    unreadable: str | None = None  # sequence number of the first record that can't be read
    for record in records:
        sequence_number = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            event = event_from_stream_record(record)
        except ValueError:
            logger.exception("stream record not relayed", extra={"sequence_number": sequence_number})
            unreadable = sequence_number
            break  # everything after it is resent with it
        if event is not None:
            decoded.append((sequence_number, event))

    events = [event for _, event in decoded]
    relayed_ids = set(relay(events, runtime, event_publisher(runtime))) if events else set()
    relayed = [event for event in events if event.id in relayed_ids]
    if relayed:
        try:
            runtime.store.events.mark_relayed(relayed)
        except Exception:
            # They reached the bus and the consumers: the checkpoint moves on. Left in the outbox,
            # the drain relays them once more (consumers de-duplicate by id).
            logger.exception("relayed events not taken out of the outbox", extra={"count": len(relayed)})

    first_failed = next((sequence for sequence, event in decoded if event.id not in relayed_ids), unreadable)
    if first_failed is not None:
        logger.warning(
            "stream batch relayed in part",
            extra={"relayed": len(relayed), "events": len(events), "retry_from": first_failed},
        )
        return {"batchItemFailures": [{"itemIdentifier": first_failed}]}
    return {"batchItemFailures": []}
