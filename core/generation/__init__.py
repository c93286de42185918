"""Generation layer: what every synthetic-data family shares, between the diffusion layer and the
families (EHRDiff, FLEXGEN-EHR, later EHRPD).

- :class:`SyntheticSet`: a generated (or uploaded, or baseline) set with its provenance;
- :class:`SamplingSettings` and :class:`SyntheticGenerator`: what the pages may rely on of any
  family's settings and models, so they never branch on the family;
- label checks and draws, chunked sampling with one progress count, synthetic record ids.
"""

from core.generation.sampling import (
    Chunk,
    SyntheticGenerator,
    chunks,
    draw_labels,
    synthetic_ids,
    validate_label_settings,
)
from core.generation.synthetic import SamplingSettings, SyntheticSet

__all__ = [
    "Chunk",
    "SamplingSettings",
    "SyntheticGenerator",
    "SyntheticSet",
    "chunks",
    "draw_labels",
    "synthetic_ids",
    "validate_label_settings",
]
