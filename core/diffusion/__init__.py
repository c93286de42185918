"""Diffusion layer shared by every model family: schedules, samplers, preconditioning, guidance.

One sampler convention: ``sampler(denoise, noise, schedule, *, generator=..., callback=...)``.
``denoise`` is a closure over the network, its conditioning and guidance
(:func:`core.diffusion.guidance.classifier_free`); ``noise`` is the initial draw, made by the
caller from an explicit generator; samplers that need fresh noise per step take that same
generator; ``callback(done, total)`` reports progress.

- :mod:`core.diffusion.karras`: EDM noise levels, Heun and DPM-Solver++(2M) (EHRDiff);
- :mod:`core.diffusion.edm`: EDM preconditioning, loss and EMA weights (EHRDiff);
- :mod:`core.diffusion.ddpm`: beta schedules, ancestral and DDIM sampling (FLEXGEN-EHR, DDL-CXR).
"""
