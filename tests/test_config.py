from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import ConfigurationError, Settings, describe_validation_error, load_settings
from tests.support import make_settings


def test_defaults_select_the_local_dynamodb_engine_in_local(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.app_env == "local"
    assert settings.backend == "dynamodb"
    assert settings.uses_local_engine
    assert settings.should_seed_demo_data


def test_mongodb_uri_selects_mongo() -> None:
    settings = make_settings(mongodb_uri="mongodb://127.0.0.1:27017")
    assert settings.backend == "mongo"
    assert not settings.uses_local_engine


def test_endpoint_url_selects_external_dynamodb() -> None:
    settings = make_settings(dynamodb_endpoint_url="http://127.0.0.1:8001")
    assert not settings.uses_local_engine


def test_production_needs_a_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, app_env="prod")  # type: ignore[call-arg]


def test_production_rejects_a_weak_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(_env_file=None, app_env="prod", jwt_secret="short")  # type: ignore[call-arg]


def test_production_rejects_demo_password() -> None:
    with pytest.raises(ValidationError, match="only allowed when APP_ENV=local"):
        Settings(_env_file=None, app_env="dev", jwt_secret="x" * 40, demo_admin_password="demo-password")  # type: ignore[call-arg]


def test_production_never_uses_the_local_engine() -> None:
    settings = Settings(_env_file=None, app_env="prod", jwt_secret="x" * 40)  # type: ignore[call-arg]
    assert not settings.uses_local_engine
    assert not settings.should_create_table
    assert not settings.should_seed_demo_data


def test_ssm_parameter_is_enough_outside_local() -> None:
    Settings(_env_file=None, app_env="prod", jwt_secret_ssm_parameter="/portal/prod/jwt")  # type: ignore[call-arg]


def test_wildcard_cors_is_rejected() -> None:
    with pytest.raises(ValidationError, match="not allowed"):
        make_settings(cors_origins="*")


def test_cors_origins_are_split() -> None:
    assert make_settings(cors_origins="https://a.example, https://b.example").cors_origins == [
        "https://a.example",
        "https://b.example",
    ]


def test_bad_environment_message_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production-ish")
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", "0")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "APP_ENV" in message
    assert "ACCESS_TOKEN_MINUTES" in message


def test_describe_validation_error_uses_env_names() -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(dynamodb_table="bad name!")
    assert describe_validation_error(caught.value).startswith("invalid configuration: DYNAMODB_TABLE:")


def test_base_path_is_normalised() -> None:
    assert make_settings(api_base_path="portal/").api_base_path == "/portal"


def test_default_phone_region_is_checked_and_upper_cased() -> None:
    assert make_settings().default_phone_region == "GB"
    assert make_settings(default_phone_region=" us ").default_phone_region == "US"
    with pytest.raises(ValidationError, match="the United Kingdom is GB"):
        make_settings(default_phone_region="UK")
    with pytest.raises(ValidationError, match="not a region"):
        make_settings(default_phone_region="XX")


def test_webhook_targets_are_strict_everywhere_but_local() -> None:
    assert Settings(_env_file=None, app_env="local").webhook_strict_targets is False  # type: ignore[call-arg]
    assert Settings(_env_file=None, app_env="test").webhook_strict_targets is True  # type: ignore[call-arg]
    prod = Settings(_env_file=None, app_env="prod", jwt_secret="x" * 40)  # type: ignore[call-arg]
    assert prod.webhook_strict_targets is True
    local_receiver = Settings(_env_file=None, app_env="test", webhook_target_policy="local")  # type: ignore[call-arg]
    assert local_receiver.webhook_strict_targets is False
    with pytest.raises(ValidationError, match="WEBHOOK_TARGET_POLICY=local"):
        Settings(_env_file=None, app_env="prod", jwt_secret="x" * 40, webhook_target_policy="local")  # type: ignore[call-arg]
