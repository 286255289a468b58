"""Helpers shared by tests and benchmarks."""

from __future__ import annotations

from app.config import Settings

TEST_SECRET = "test-signing-secret-that-is-long-enough-0123456789"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "jwt_secret": TEST_SECRET,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "seed_demo_data": False,
        "data_dir": "/nonexistent-test-data-dir",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
