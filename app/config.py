"""Application settings, read from the environment once and validated at start-up.

A bad value stops the process with a message naming the setting; outside `local` there is no
default JWT secret (see `Settings.check_secrets`).
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS

MIN_SECRET_BYTES = 32
# The stores the app runs on; each has its package under app/storage/ (factory.py picks one).
StorageBackend = Literal["dynamodb", "mongo"]


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the configuration cannot work; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_env: Environment = Field(Environment.LOCAL, description="Deployment environment.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Storage. Without STORAGE_BACKEND the backend follows from what is configured:
    # MONGODB_URI selects MongoDB, anything else DynamoDB.
    storage_backend: StorageBackend | None = None
    dynamodb_table: str = Field("subscriber-portal", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    dynamodb_endpoint_url: str | None = None
    dynamodb_create_table: bool | None = Field(
        None, description="Create the table if missing; defaults to on in local/test, off in AWS."
    )
    aws_region: str = "eu-west-1"
    mongodb_uri: SecretStr | None = None
    mongodb_database: str = Field("subscriber_portal", min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$")

    # Local only: the local DynamoDB engine's database and state, the generated signing secret, job files.
    data_dir: Path = Path(".data")

    # Auth.
    jwt_secret: SecretStr | None = None
    jwt_secret_ssm_parameter: str | None = Field(
        None, description="SSM SecureString parameter holding the JWT secret; read once at run time."
    )
    jwt_issuer: str = "subscriber-portal"
    jwt_audience: str = "subscriber-portal-api"
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(7, ge=1, le=90)
    password_min_length: int = Field(12, ge=8, le=128)
    password_hash_time_cost: int = Field(3, ge=1, le=10, description="argon2 time cost (iterations).")
    password_hash_memory_kib: int = Field(65536, ge=8, le=1 << 20, description="argon2 memory cost in KiB.")
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2),
        ge=1,
        le=64,
        description="Password hashes run at once per process; default half the CPUs (at least 1), so "
        "other requests keep a core.",
    )
    password_hash_queue_seconds: float = Field(
        2.0, ge=0, le=30, description="How long a hash waits for a free slot before its request gets 503."
    )
    login_max_failures: int = Field(5, ge=1, le=100)
    login_lockout_minutes: int = Field(15, ge=1, le=24 * 60)
    login_rate_per_minute: int = Field(20, ge=1, le=10_000, description="Login attempts per client address.")
    forwarded_allow_ips: str = Field(
        "",
        description="Reverse proxies whose X-Forwarded-For is trusted (comma-separated addresses or networks, "
        "or '*'), the same variable uvicorn reads for --forwarded-allow-ips. Empty: no proxy is trusted.",
    )
    demo_admin_password: SecretStr | None = Field(
        None, description="Password of the demo admin seeded in local mode; generated if unset."
    )
    seed_demo_data: bool | None = Field(None, description="Seed demo data on an empty store; default: local only.")

    # Files and jobs.
    uploads_bucket: str | None = None
    jobs_queue_url: str | None = None
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, le=5 * 1024**3, description="Largest job input file (the API and presigned PUTs)."
    )
    job_lease_seconds: int = Field(
        120,
        ge=1,
        le=900,
        description="How long a job's worker holds it without renewing it (it renews while it works) before "
        "another may resume it.",
    )

    # HTTP.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_base_path: str = Field("", description="Base path of a custom-domain API mapping, e.g. /portal.")
    max_request_bytes: int = Field(1_048_576, ge=1024, le=6 * 1024 * 1024)
    docs_enabled: bool = True
    audit_retention_days: int = Field(365, ge=1, le=3650)
    event_retention_days: int = Field(
        DEFAULT_RETENTION_DAYS,
        ge=1,
        le=365,
        description="How long published events stay in the store (the replay window).",
    )

    events_relay: Literal["inline", "background", "stream"] | None = Field(
        None,
        description="When committed events are relayed (docs/events.md): `inline` right after the commit "
        "in the committing process, `background` by a thread of a long-lived server, `stream` by the "
        "table's DynamoDB stream (AWS). Default: background in local, inline elsewhere.",
    )

    # Notifications to subscribers (app/notifications; README "Notifications").
    notifications_enabled: bool = Field(True, description="Send booking messages to subscribers at all.")
    notifications_transport: Literal["files", "aws"] | None = Field(
        None,
        description="`files`: messages are written under DATA_DIR/messages and nothing leaves the machine; "
        "`aws`: email through SES, SMS through SNS. Default: files in local/test, aws elsewhere.",
    )
    notifications_email_sender: str | None = Field(
        None,
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$",
        description="The SES-verified From address; without it (in aws transport) no email is sent, only SMS.",
    )
    notifications_sms_sender_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]{0,10}[A-Za-z][A-Za-z0-9]{0,10}$",
        max_length=11,
        description="SNS SMS sender ID (1-11 letters and digits, at least one letter), where the country allows one.",
    )
    notifications_channels: Annotated[list[Literal["email", "sms"]], NoDecode] | None = Field(
        None,
        description="Channels that may be used (comma-separated `email`, `sms`). Default: both, email only "
        "when it can be sent (files transport, or a sender address).",
    )
    notifications_default_channel: Literal["email", "sms"] = Field(
        "email", description="Channel for subscribers who chose none (the other one when they lack its contact)."
    )
    notifications_reminder_lead_minutes: int = Field(
        24 * 60, ge=0, le=30 * 24 * 60, description="A reminder goes this long before the slot; 0: no reminders."
    )
    notifications_claim_seconds: int = Field(
        300,
        ge=30,
        le=3600,
        description="A message claimed but not recorded as sent (its sender crashed) is tried again after this.",
    )
    notifications_max_attempts: int = Field(
        5, ge=1, le=50, description="Sends of one message that failed before it is recorded FAILED for good."
    )

    # Events on the bus (docs/events.md, "Relay in AWS"). No bus name: events reach the in-process
    # consumers (webhooks, notifications) only.
    event_bus_name: str | None = Field(
        None,
        min_length=1,
        max_length=1600,
        pattern=r"^(arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/)?[A-Za-z0-9._/-]+$",
        description="EventBridge bus (name or ARN) committed events are published to; unset: no bus.",
    )
    event_bus_source: str = Field(
        "subscriber-portal",
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The Source of every entry this app puts on the bus (what rules match on).",
    )
    event_bus_role: Literal["admin", "operator", "viewer"] = Field(
        "viewer",
        description="The role whose view of personal data the bus gets: subscriber values in an event's "
        "data are masked as that role sees them through the API (viewer: masked).",
    )

    # Webhooks.
    webhook_target_policy: Literal["strict", "local"] | None = Field(
        None,
        description="strict: https only, public addresses only (SSRF rules); local: any http(s) URL, for a "
        "receiver on this machine. Default: local when APP_ENV=local, strict otherwise; `local` is refused "
        "outside local and test.",
    )
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated private networks (CIDR) webhooks may be sent to under the strict "
        "policy, e.g. a CRM inside the VPC; https is still required and metadata addresses stay refused.",
    )
    webhook_ca_bundle: Path | None = Field(
        None, description="A PEM file of CA certificates trusted for webhook targets besides the public ones."
    )
    webhook_disable_after_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Deliveries failed for good in a row (each after ~a day of retries) that disable a webhook.",
    )
    webhook_delivery_retention_days: int = Field(
        30,
        ge=2,
        le=365,
        description="How long the delivery log keeps a delivery (the store's TTL removes it); at least 2 days, "
        "longer than the retries of one delivery.",
    )

    # Subscribers.
    default_phone_region: str = Field(
        "GB",
        description="ISO 3166 region (e.g. GB, US, DE) whose national format MSISDNs without + are read in.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, origins: list[str]) -> list[str]:
        # Credentials (the Authorization header) are allowed, so `*` would be unsafe and browsers reject it.
        if "*" in origins:
            raise ValueError("'*' is not allowed; list the portal's origins explicitly")
        return origins

    @field_validator(
        "notifications_email_sender", "notifications_sms_sender_id", "notifications_channels", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """A deploy parameter left empty ('') means the setting is not set."""
        return None if value == "" else value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [network.strip() for network in value.split(",") if network.strip()]
        return value

    @field_validator("webhook_ca_bundle", mode="before")
    @classmethod
    def _bundle_is_a_file(cls, value: object) -> object:
        if value in ("", None):
            return None
        if not Path(str(value)).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("notifications_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            # Empty (a deploy parameter left empty) is unset: the default channels.
            return [channel.strip().lower() for channel in value.split(",") if channel.strip()] or None
        return value

    @model_validator(mode="after")
    def _email_needs_a_sender(self) -> Settings:
        if (
            self.notifications_channels is not None
            and "email" in self.notifications_channels
            and self.notification_transport == "aws"
            and self.notifications_email_sender is None
        ):
            raise ValueError("NOTIFICATIONS_CHANNELS names email: NOTIFICATIONS_EMAIL_SENDER is required with SES")
        return self

    @property
    def notification_transport(self) -> Literal["files", "aws"]:
        if self.notifications_transport is not None:
            return self.notifications_transport
        return "files" if self.is_local_like else "aws"

    @property
    def notification_channels(self) -> frozenset[str]:
        """The channels messages may go by (see NOTIFICATIONS_CHANNELS)."""
        if self.notifications_channels is not None:
            return frozenset(self.notifications_channels)
        email = self.notification_transport == "files" or self.notifications_email_sender is not None
        return frozenset({"sms", "email"} if email else {"sms"})

    @field_validator("event_bus_source")
    @classmethod
    def _not_an_aws_source(cls, value: str) -> str:
        if value.lower().startswith("aws."):
            raise ValueError("sources starting with 'aws.' are reserved for AWS services; PutEvents refuses them")
        return value

    @field_validator("api_base_path")
    @classmethod
    def _normalise_base_path(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            value = "/" + value
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _known_phone_region(cls, value: str) -> str:
        value = value.strip().upper()
        # Imported here: only settings validation and subscriber validation need phonenumbers.
        from app.subscribers.fields import is_supported_region

        if not is_supported_region(value):
            hint = " (the United Kingdom is GB)" if value == "UK" else ""
            raise ValueError(
                f"{value!r} is not a region phonenumbers knows{hint}; use an ISO 3166 code such as GB or US"
            )
        return value

    @model_validator(mode="after")
    def check_secrets(self) -> Settings:
        if self.is_local_like:
            return self
        if self.jwt_secret is None and not self.jwt_secret_ssm_parameter:
            raise ValueError(f"JWT_SECRET (or JWT_SECRET_SSM_PARAMETER) is required when APP_ENV={self.app_env.value}")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes when APP_ENV={self.app_env.value}")
        if self.webhook_target_policy == "local":
            raise ValueError("WEBHOOK_TARGET_POLICY=local is only allowed when APP_ENV is local or test")
        if self.demo_admin_password is not None or self.seed_demo_data:
            raise ValueError("DEMO_ADMIN_PASSWORD / SEED_DEMO_DATA are only allowed when APP_ENV=local")
        return self

    @property
    def events_relay_mode(self) -> Literal["inline", "background", "stream"]:
        if self.events_relay is not None:
            return self.events_relay
        return "background" if self.app_env is Environment.LOCAL else "inline"

    @property
    def is_local_like(self) -> bool:
        return self.app_env in (Environment.LOCAL, Environment.TEST)

    @property
    def webhook_strict_targets(self) -> bool:
        """Whether webhook targets must be https and public (everywhere but local, unless set)."""
        if self.webhook_target_policy is not None:
            return self.webhook_target_policy == "strict"
        return self.app_env is not Environment.LOCAL

    @property
    def backend(self) -> StorageBackend:
        if self.storage_backend:
            return self.storage_backend
        return "mongo" if self.mongodb_uri else "dynamodb"

    @property
    def uses_local_engine(self) -> bool:
        """Local mode with no store configured runs on DynamoDB Local, one engine per DATA_DIR."""
        return self.backend == "dynamodb" and self.dynamodb_endpoint_url is None and self.is_local_like

    @property
    def should_create_table(self) -> bool:
        if self.dynamodb_create_table is not None:
            return self.dynamodb_create_table
        return self.is_local_like

    @property
    def should_seed_demo_data(self) -> bool:
        if self.seed_demo_data is not None:
            return self.seed_demo_data
        return self.app_env is Environment.LOCAL


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting, naming it as the environment variable."""
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
