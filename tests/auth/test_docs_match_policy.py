from __future__ import annotations

import re
from pathlib import Path

from app.auth.policy import ROLE_CAPABILITIES, Capability
from app.storage.records import Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "auth.md"


def test_capability_table_in_docs_matches_the_code() -> None:
    rows = re.findall(r"^\| `([a-z:]+)` \| (yes|no) \| (yes|no) \| (yes|no) \|$", DOC.read_text(), re.MULTILINE)
    documented = {capability: (viewer, operator, admin) for capability, viewer, operator, admin in rows}
    columns = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    actual = {
        capability.value: tuple("yes" if capability in ROLE_CAPABILITIES[role] else "no" for role in columns)
        for capability in Capability
    }
    assert documented == actual
