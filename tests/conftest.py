from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def contract_names() -> dict[str, dict[str, list[str]]]:
    data: dict[str, dict[str, list[str]]] = yaml.safe_load((SHARED / "contract" / "treatment-names.yaml").read_text())
    return data


def offered(rec: dict[str, Any]) -> set[str]:
    return {d for entry in rec["options"] + rec["local_and_supportive"] for c in entry["drugs"] for d in c}
