"""The rules and the storage layer do not depend on the web framework.

Services, the error vocabulary they raise (`app.errors`) and every storage module import neither
FastAPI nor Starlette: only the routers, their dependencies and the edge (`app.problem_responses`)
do. Checked in a fresh interpreter, so what the test session already imported does not hide an
import.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import app.storage

APP = Path(__file__).resolve().parents[1] / "app"
FRAMEWORKS = ("fastapi", "starlette")


def framework_free_modules() -> list[str]:
    services = sorted(f"app.{path.parent.name}.service" for path in APP.glob("*/service.py"))
    storage = sorted(module.name for module in pkgutil.walk_packages(app.storage.__path__, "app.storage."))
    return ["app.errors", *services, "app.storage", *storage]


# Imports each module in turn and names the first that brought a framework in.
_PROBE = """
import importlib, json, sys
offenders = {}
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
    if loaded:
        offenders[name] = loaded
        break
print(json.dumps(offenders))
"""


def test_services_errors_and_storage_import_no_web_framework() -> None:
    modules = framework_free_modules()
    assert "app.subscribers.service" in modules
    assert "app.storage.dynamodb.subscribers" in modules
    result = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(FRAMEWORKS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=APP.parent,
    )
    assert json.loads(result.stdout) == {}
