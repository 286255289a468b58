"""Embedded DynamoDB for local development: moto in-process, persisted as a snapshot file.

The whole table is written to `<DATA_DIR>/embedded-dynamodb.json` on shutdown (atomically, via a
temporary file) and loaded on start, so local data survives a restart. Not for production: data
written after the last clean shutdown is lost if the process is killed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from app.storage.cursor import CursorCodec
from app.storage.dynamodb.store import DynamoStore
from app.storage.dynamodb.table import BATCH_WRITE_LIMIT

logger = logging.getLogger("app.storage.embedded")
SNAPSHOT_FORMAT = 1


class EmbeddedDynamoStore(DynamoStore):
    def __init__(self, table_name: str, region: str, cursors: CursorCodec, snapshot_path: Path | None) -> None:
        self._mock = mock_aws()
        self._mock.start()
        client = boto3.client("dynamodb", region_name=region)
        super().__init__(client, table_name, cursors, serialize_calls=True)
        self.snapshot_path = snapshot_path
        self.table.ensure_table()
        loaded = self._load_snapshot()
        logger.warning(
            "using the EMBEDDED DynamoDB (moto in-process): for local development only",
            extra={"table": table_name, "snapshot": str(snapshot_path), "items_loaded": loaded},
        )

    def _raw_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table.name}
        while True:
            response = self.table.call("scan", **kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _load_snapshot(self) -> int:
        if not self.snapshot_path or not self.snapshot_path.exists():
            return 0
        snapshot = json.loads(self.snapshot_path.read_text(encoding="utf-8"))
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise RuntimeError(f"{self.snapshot_path}: unknown snapshot format {snapshot.get('format')!r}")
        items = snapshot["items"]
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
            self.table.call("batch_write_item", RequestItems={self.table.name: chunk})
        return len(items)

    def save_snapshot(self) -> int:
        if not self.snapshot_path:
            return 0
        items = self._raw_items()
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.snapshot_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"format": SNAPSHOT_FORMAT, "items": items}), encoding="utf-8")
        os.replace(temporary, self.snapshot_path)
        return len(items)

    def close(self) -> None:
        saved = self.save_snapshot()
        logger.info("embedded DynamoDB snapshot saved", extra={"items": saved, "path": str(self.snapshot_path)})
        self._mock.stop()
