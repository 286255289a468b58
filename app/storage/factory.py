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
    return _dynamo_store(settings, cursors)


def _dynamo_store(settings: Settings, cursors: CursorCodec) -> Store:
    import boto3
    from botocore.config import Config

    from app.storage.dynamodb.store import DynamoStore

    endpoint_url, credential = settings.dynamodb_endpoint_url, None
    if settings.uses_local_engine:
        # Local only (never on Lambda): the engine shared by every local process of this DATA_DIR.
        from app.storage.local_engine import CREDENTIAL, ensure_engine

        endpoint_url, credential = ensure_engine(settings.data_dir).endpoint, CREDENTIAL
    # No client-side parameter validation: DynamoDB validates every request itself, and botocore's
    # walk over each nested transaction item was a third of an import's CPU.
    client = boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=3,
            read_timeout=10,
            parameter_validation=False,
        ),
        aws_access_key_id=credential,
        aws_secret_access_key=credential,
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
