"""Chooses and builds the store once per process, from settings."""

from __future__ import annotations

import logging

from app.config import ConfigurationError, Settings
from app.storage.base import Store
from app.storage.cursor import CursorCodec

logger = logging.getLogger("app.storage")


def create_store(settings: Settings, signing_secret: bytes) -> Store:
    cursors = CursorCodec(signing_secret)
    if settings.backend == "mongo":
        return _mongo_store(settings, cursors)
    if settings.uses_embedded_store:
        # Imported here: moto is a local-only dependency and is not shipped to Lambda.
        from app.storage.embedded import EmbeddedDynamoStore

        return EmbeddedDynamoStore(
            settings.dynamodb_table,
            settings.aws_region,
            cursors,
            settings.data_dir / "embedded-dynamodb.json",
        )
    return _dynamo_store(settings, cursors)


def _dynamo_store(settings: Settings, cursors: CursorCodec) -> Store:
    import boto3
    from botocore.config import Config

    from app.storage.dynamodb.store import DynamoStore

    client = boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.dynamodb_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10),
    )
    store = DynamoStore(client, settings.dynamodb_table, cursors)
    if settings.should_create_table and store.table.ensure_table():
        logger.info("created table %s", settings.dynamodb_table)
    return store


def _mongo_store(settings: Settings, cursors: CursorCodec) -> Store:
    # pymongo is imported only when MongoDB is selected (it costs ~140 ms of cold start).
    from pymongo import MongoClient

    from app.storage.mongo.store import MongoStore

    if settings.mongodb_uri is None:
        raise ConfigurationError("MONGODB_URI: required when STORAGE_BACKEND=mongo")
    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongodb_uri.get_secret_value(),
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname="subscriber-portal",
    )
    return MongoStore(client, settings.mongodb_database, cursors, owns_client=True)
