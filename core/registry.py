"""The explicit registry of shipped models, and the id-keyed :class:`Registry` it is built on.

Every model a page can offer is registered here, by hand (no import-time discovery): what the
app can offer is readable in one place. Later families add their ``MODELS.register(...)`` lines
at the bottom. The review's metrics are registered the same way in :mod:`core.metrics.specs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from core.errors import RegistryError

Task = Literal["generate-ehr", "forecast-cxr"]
Modality = Literal["static", "temporal", "codes", "image"]


@dataclass(frozen=True)
class ModelSpec:
    """A model family entry point plus, optionally, a shipped checkpoint of it."""

    id: str
    family: str
    task: Task
    title: str
    description: str
    requires: tuple[Modality, ...]
    checkpoint: str | None = None  # folder name under checkpoints/
    distilled: str | None = (
        None  # checkpoint of a model distilled from this one (fewer evaluations)
    )


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


class Registry(Generic[T]):
    """An insertion-ordered, id-keyed collection that refuses duplicates."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._items: dict[str, T] = {}

    def register(self, spec: T) -> T:
        if not spec.id or spec.id != spec.id.strip():
            raise RegistryError(f"Invalid {self._kind} id {spec.id!r}.")
        if spec.id in self._items:
            raise RegistryError(f"{self._kind} '{spec.id}' is already registered.")
        self._items[spec.id] = spec
        return spec

    def get(self, spec_id: str) -> T:
        try:
            return self._items[spec_id]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise RegistryError(f"Unknown {self._kind} '{spec_id}'. Known: {known}.") from None

    def __contains__(self, spec_id: object) -> bool:
        return spec_id in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def where(self, **attrs: object) -> list[T]:
        """Entries whose attributes equal all of ``attrs`` (e.g. ``task="generate-ehr"``)."""
        return [
            s for s in self._items.values() if all(getattr(s, k) == v for k, v in attrs.items())
        ]


MODELS: Registry[ModelSpec] = Registry("model")

# --- Registered models -------------------------------------------------------------------------
# (EHRDiff, FLEXGEN-EHR and DDL-CXR entries are added here as their packages land.)
MODELS.register(
    ModelSpec(
        id="ehrdiff-physionet2012",
        family="ehrdiff",
        task="generate-ehr",
        title="EHRDiff: ICU stays (PhysioNet 2012)",
        description=(
            "One vector per ICU stay: age, sex, height, ICU type, weight and first/last/min/max/mean "
            "of 37 vitals and labs over 48 h, with explicit missingness; conditional on in-hospital death."
        ),
        requires=("static", "temporal"),
        checkpoint="ehrdiff-physionet2012",
        distilled="ehrdiff-physionet2012-distilled",
    )
)
MODELS.register(
    ModelSpec(
        id="ehrdiff-eicu-icd9",
        family="ehrdiff",
        task="generate-ehr",
        title="EHRDiff: ICU diagnoses (eICU demo, ICD-9 3-digit)",
        description="Binary vectors of 3-digit ICD-9 diagnosis codes per ICU stay; unconditional.",
        requires=("codes",),
        checkpoint="ehrdiff-eicu-icd9",
        distilled="ehrdiff-eicu-icd9-distilled",
    )
)


# Distilled companions: offered as the "distilled" sampler of the model each names (Generate
# page), listed with their own cards and verification (Models page).
def _distilled(teacher_id: str, title: str) -> ModelSpec:
    teacher = MODELS.get(teacher_id)
    return ModelSpec(
        id=teacher.distilled,
        family=teacher.family,
        task=teacher.task,
        title=f"{title}, distilled to 1-2 evaluations",
        description=(
            f"{teacher_id} distilled (core.ehrdiff.distill) into a sampler of one or two network "
            "evaluations, trained on its Heun-32 samples only."
        ),
        requires=teacher.requires,
        checkpoint=teacher.distilled,
    )


MODELS.register(_distilled("ehrdiff-physionet2012", "EHRDiff: ICU stays (PhysioNet 2012)"))
MODELS.register(_distilled("ehrdiff-eicu-icd9", "EHRDiff: ICU diagnoses (eICU demo)"))
MODELS.register(
    ModelSpec(
        id="flexgen-physionet2012",
        family="flexgen-ehr",
        task="generate-ehr",
        title="FLEXGEN-EHR: ICU stays with 48-hour series (PhysioNet 2012)",
        description=(
            "Complete synthetic patients: static row (age, sex, height, ICU type, weight) plus "
            "hourly series of 37 vitals and labs over 48 h with their observation mask; a missing "
            "part filled by kNN imputation from the records with both parts (the card compares it "
            "with the paper's Gromov-Wasserstein alignment); conditional on in-hospital death."
        ),
        requires=("static", "temporal"),
        checkpoint="flexgen-physionet2012",
    )
)
MODELS.register(
    ModelSpec(
        id="ddlcxr-hannover",
        family="ddl-cxr",
        task="forecast-cxr",
        title="DDL-CXR: later chest X-ray from a prior one + labs (Hannover COVID-19, 64 px)",
        description=(
            "Conditional latent diffusion: the prior radiograph's VAE latent, the time gap and the "
            "labs recorded since (CRP, d-dimer, factor XII, LDH, lymphocytes, neutrophils, pCO2, "
            "pO2) give samples of the later radiograph, sampled from the prior noised by the gap. "
            "Pretrained on Kermany pseudo-pairs, fine-tuned on 29 patients (the example's patient "
            "left out): a 64 px demonstrator."
        ),
        requires=("image", "temporal"),
        checkpoint="ddlcxr-hannover-64",
    )
)
MODELS.register(
    ModelSpec(
        id="ehrpd-eicu",
        family="ehrpd",
        task="generate-ehr",
        title="EHRPD: visit sequences (eICU demo, patients who came back)",
        description=(
            "Patients with 2 or more ICU unit stays: per stay, 3-digit ICD-9 diagnoses, admission "
            "diagnoses and past history, and the gap since the previous stay; generated visit by "
            "visit (history encoder, predictive diffusion of the next visit, gap and stop heads). "
            "Trained on 333 patients: a demonstrator; see its model card for the measured fidelity."
        ),
        requires=("codes",),
        checkpoint="ehrpd-eicu",
    )
)
