"""Demo cohorts shipped in ``assets/demo``: synthetic records made by the project's own models.

``index.json`` lists each demo with the cohort format, the files for its input slots and the
loader options, so a demo loads through exactly the same code path as a user's upload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.cohort import Cohort
from core.data.formats import NamedInput, load_cohort
from core.errors import CohortError

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"


@dataclass(frozen=True)
class DemoCohort:
    id: str
    title: str
    description: str
    format: str
    inputs: dict[str, str]
    options: dict[str, Any]


def list_demos(folder: Path = DEMO_DIR) -> list[DemoCohort]:
    index = folder / "index.json"
    if not index.is_file():
        return []
    try:
        raw = json.loads(index.read_text(encoding="utf-8"))
        return [DemoCohort(**entry) for entry in raw["demos"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CohortError(f"demo index is malformed ({exc})", source=str(index.name)) from None


def load_demo(demo: DemoCohort, folder: Path = DEMO_DIR) -> Cohort:
    inputs = {slot: NamedInput(name, folder / name) for slot, name in demo.inputs.items()}
    return load_cohort(demo.format, inputs, demo.options)
