"""Nothing above storage imports a database or AWS client library (docs/architecture.md, "Shape").

Services talk to a `Store` and to the adapters in `app/aws.py`; only those homes may import boto3,
botocore or pymongo. The check reads every module under app/ with `ast`, so an import inside a
function (the lazy imports that keep cold start low) counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

# Library -> the modules (and packages, with everything under them) that may import it.
HOMES: dict[str, tuple[str, ...]] = {
    "boto3": ("app.storage", "app.aws"),
    "botocore": ("app.storage", "app.aws"),
    "pymongo": ("app.storage",),
    "bson": ("app.storage",),
}


def imported_libraries(source: str) -> set[str]:
    """The top-level names of everything `source` imports, wherever the import stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_home(module: str, library: str) -> bool:
    return any(module == home or module.startswith(home + ".") for home in HOMES[library])


def test_only_storage_and_the_aws_adapters_import_client_libraries() -> None:
    misplaced = sorted(
        f"{module} imports {library}"
        for path in APP.rglob("*.py")
        for module in [module_name(path)]
        for library in imported_libraries(path.read_text()) & HOMES.keys()
        if not is_home(module, library)
    )
    assert misplaced == []


def test_the_homes_exist() -> None:
    """A renamed home would make the rule above quietly allow nothing, or refuse everything."""
    modules = {module_name(path) for path in APP.rglob("*.py")}
    assert {home for homes in HOMES.values() for home in homes} <= modules


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "import botocore.exceptions as errors",
        "from pymongo.errors import DuplicateKeyError",
        "def client():\n    import boto3\n    return boto3.client('s3')",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bson import ObjectId",
        "import importlib\nimportlib.import_module('boto3')",
    ],
)
def test_every_kind_of_import_is_seen(source: str) -> None:
    assert imported_libraries(source) & HOMES.keys()


def test_names_that_merely_mention_a_library_are_not_imports() -> None:
    source = "import logging\nfor name in ('botocore', 'pymongo'):\n    logging.getLogger(name)\nfrom . import boto3"
    assert imported_libraries(source) & HOMES.keys() == set()
