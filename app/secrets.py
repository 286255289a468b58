"""The signing secret (JWT, cursors): from the environment, from SSM at run time, or local-only generated."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from app import aws
from app.config import MIN_SECRET_BYTES, ConfigurationError, Settings
from app.localfiles import create_private

logger = logging.getLogger("app.secrets")


def resolve_signing_secret(settings: Settings) -> bytes:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    if parameter := settings.jwt_secret_ssm_parameter:
        return _from_ssm(parameter, settings)
    if settings.is_local_like:
        return _local_secret(settings.data_dir)
    raise ConfigurationError("JWT_SECRET: not set")  # unreachable: Settings already refuses this


def _from_ssm(parameter: str, settings: Settings) -> bytes:
    value = aws.read_secure_parameter(parameter, region=settings.aws_region).encode()
    if len(value) < MIN_SECRET_BYTES and not settings.is_local_like:
        raise ConfigurationError(f"JWT_SECRET_SSM_PARAMETER: secret must be at least {MIN_SECRET_BYTES} bytes")
    return value


def _local_secret(data_dir: Path) -> bytes:
    """Local mode: a random secret kept beside the local data, so tokens survive a restart.

    Created owner-only and only if missing: processes starting together (uvicorn workers, a CLI)
    all end up with the one secret that was written first.
    """
    path = data_dir / "signing-secret"
    if not path.exists() and create_private(path, secrets.token_urlsafe(48).encode()):
        logger.info("generated a local signing secret", extra={"path": str(path)})
    value = path.read_bytes().strip()
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{path}: holds {len(value)} bytes, not a signing secret (at least {MIN_SECRET_BYTES}); "
            "delete it to generate a new one (every local session then signs in again)"
        )
    return value
