"""Classifier-free guidance (Ho & Salimans 2022) as a closure, for every sampler convention.

``model(x, level, labels)`` is a label-conditional network (``labels=None`` or the null label:
unconditional); ``level`` is a noise level or a step, scalar or one per sample. The returned
``denoise(x, level)`` mixes ``uncond + w (cond - uncond)`` in one batched call: ``w = 1`` is plain
conditional sampling, ``w = 0`` ignores the label.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def classifier_free(
    model: Model, labels: torch.Tensor | None, null_label: int, scale: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if labels is None or scale == 0.0:
        return lambda x, level: model(x, level, None)
    if scale == 1.0:
        return lambda x, level: model(x, level, labels)
    null = torch.full_like(labels, null_label)
    both_labels = torch.cat([labels, null])

    def denoise(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        per_sample = level.dim() > 0 and len(level) == len(x)
        both = model(
            torch.cat([x, x]), torch.cat([level, level]) if per_sample else level, both_labels
        )
        cond, uncond = both.chunk(2)
        return uncond + scale * (cond - uncond)

    return denoise


def network_evaluations_per_step(labels: torch.Tensor | None, scale: float) -> int:
    """Guided steps evaluate the network on twice the batch."""
    return 1 if labels is None or scale in (0.0, 1.0) else 2
