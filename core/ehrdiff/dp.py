"""Differentially private EHRDiff training: DP-SGD (Abadi et al. 2016) through Opacus (issue #34).

Each step samples records by Poisson sampling (each one independently with probability
``q = batch_size / n``, as Opacus's ``UniformWithReplacementSampler`` does), computes every
record's own gradient of its EDM loss (``torch.func.vmap`` over single rows: the network feeds
its layers' weights to ``addmm`` directly, which Opacus's module hooks would not see), and hands
them to Opacus's ``DPOptimizer``, which clips each to ``max_grad_norm``, adds Gaussian noise of
standard deviation ``noise_multiplier x max_grad_norm`` and averages over the expected batch.
Opacus's accountant (RDP or PRV) turns (noise multiplier, q, steps) into (epsilon, delta); the
noise multiplier is the smallest that keeps the planned steps within the target epsilon.

The privacy unit is the record, which is the patient only where each patient has one record:
:func:`require_one_record_per_patient` refuses other cohorts (per-patient sampling and clipping
are not implemented yet).

What the guarantee covers: the network's weights. The encoding (category lists, quantiles of
numeric columns), the label prior, the data mean, ``sigma_data`` and the inferred constraints are
fitted from the training records without noise and ship with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, vmap

from core.errors import ConfigError

ACCOUNTANTS = ("rdp", "prv")

# What a model card says the guarantee covers (aggregates only; see the module docstring).
SCOPE = (
    "network weights (DP-SGD); the encoding, label prior, data mean, sigma_data and constraints "
    "are fitted from the training records without DP"
)


def default_delta(n: int) -> float:
    """``1 / n^1.1``: below ``1 / n``, as a delta must be to mean anything."""
    return 1.0 / n**1.1


@dataclass(frozen=True)
class DPConfig:
    """The requested guarantee: target (epsilon, delta) and the per-record clipping norm."""

    epsilon: float
    delta: float | None = None  # None = 1 / n^1.1 for n training records
    max_grad_norm: float = 1.0
    accountant: str = "rdp"

    def validate(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"DP epsilon must be positive, got {self.epsilon}.")
        if self.delta is not None and not 0.0 < self.delta < 1.0:
            raise ConfigError(f"DP delta must be in (0, 1), got {self.delta}.")
        if not self.max_grad_norm > 0:
            raise ConfigError(f"DP clipping norm must be positive, got {self.max_grad_norm}.")
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(
                f"DP accountant must be one of {ACCOUNTANTS}, got '{self.accountant}'."
            )


@dataclass(frozen=True)
class PrivacyGuarantee:
    """The (epsilon, delta) a finished training spent, and what it was computed from."""

    epsilon: float  # spent over the steps actually run (<= target_epsilon)
    delta: float
    target_epsilon: float
    accountant: str
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    records: int

    def card(self) -> dict:
        """The manifest's ``data_card/differential_privacy``: aggregates only."""
        return {
            "epsilon": round(self.epsilon, 4),
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "accountant": self.accountant,
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": round(self.noise_multiplier, 6),
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "unit": "record (one record per patient)",
            "covers": SCOPE,
        }


def require_one_record_per_patient(patient_ids: np.ndarray | None) -> None:
    """ConfigError unless every training record belongs to a different patient."""
    if patient_ids is None:
        raise ConfigError(
            "DP training needs the records' patient ids: the patient is the privacy unit."
        )
    n_patients = len(set(patient_ids.tolist()))
    if n_patients != len(patient_ids):
        raise ConfigError(
            f"DP training refused: the training records belong to {n_patients:,} patients but "
            f"number {len(patient_ids):,}. The guarantee is per record, and per-patient sampling "
            "and clipping are not implemented yet; use a cohort with one record per patient."
        )


def plan_noise(config: DPConfig, n: int, batch_size: int, steps: int) -> tuple[float, float, float]:
    """(noise multiplier, sample rate, delta) for ``steps`` Poisson-sampled steps of expected
    size ``batch_size`` out of ``n`` records within ``config.epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    config.validate()
    delta = config.delta if config.delta is not None else default_delta(n)
    if delta >= 1.0 / n:
        raise ConfigError(
            f"DP delta {delta:g} is not below 1/n = {1.0 / n:g} for {n:,} records: such a delta "
            "allows publishing a record outright."
        )
    if batch_size > n:
        raise ConfigError(f"DP batch size {batch_size} exceeds the {n:,} training records.")
    rate = batch_size / n
    try:
        sigma = get_noise_multiplier(
            target_epsilon=config.epsilon,
            target_delta=delta,
            sample_rate=rate,
            steps=steps,
            accountant=config.accountant,
        )
    except ValueError as exc:
        raise ConfigError(f"No noise level reaches epsilon {config.epsilon}: {exc}") from None
    return float(sigma), rate, delta


def per_example_grads(
    denoiser: torch.nn.Module,
    x: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    labels: torch.Tensor | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Each row's gradient of its own EDM loss ``lambda(sigma) ||D(x + noise) - x||^2 / dim``
    (the term :func:`core.diffusion.edm.edm_loss` averages), by parameter name (``[B, *shape]``),
    and the losses ``[B]``."""
    params = {k: p.detach() for k, p in denoiser.named_parameters() if p.requires_grad}
    buffers = dict(denoiser.named_buffers())
    sd = denoiser.edm.sigma_data

    def loss(p, x1, n1, s1, l1):
        s1 = s1.reshape(1, 1)
        lab = None if l1 is None else l1.reshape(1)
        out = functional_call(denoiser, (p, buffers), (x1[None] + n1[None], s1, lab))
        weight = (s1**2 + sd**2) / (s1 * sd) ** 2
        return (weight * (out - x1[None]) ** 2).sum() / x1.shape[0]

    in_dims = (None, 0, 0, 0, None if labels is None else 0)
    return vmap(grad_and_value(loss), in_dims=in_dims, randomness="different")(
        params, x, noise, sigma, labels
    )


class PrivateSteps:
    """DP-SGD steps for one training: Poisson batches, per-example gradients, Opacus's clipping,
    noise and accounting. ``optimizer`` is the plain optimizer the training would use."""

    def __init__(
        self,
        config: DPConfig,
        denoiser: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        n: int,
        batch_size: int,
        steps: int,
        noise_generator: torch.Generator,
    ) -> None:
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer

        self.config = config
        self.n = n
        self.noise_multiplier, self.sample_rate, self.delta = plan_noise(
            config, n, batch_size, steps
        )
        self.denoiser = denoiser
        self.names = [k for k, p in denoiser.named_parameters() if p.requires_grad]
        self.params = [p for p in denoiser.parameters() if p.requires_grad]
        # Seeded noise keeps a training reproducible; it is not a cryptographic source.
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=config.max_grad_norm,
            expected_batch_size=batch_size,
            generator=noise_generator,
        )
        self.accountant = create_accountant(config.accountant)
        self.steps = 0
        self.last_loss = 0.0

    def sample(self, device: torch.device, generator: torch.Generator) -> torch.Tensor:
        """One Poisson batch: each record in it with probability ``sample_rate``."""
        keep = torch.rand(self.n, device=device, generator=generator) < self.sample_rate
        return keep.nonzero().flatten()

    def step(
        self, x: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator
    ) -> float:
        """One private optimiser step on the batch ``x``; its mean loss (the last one's when the
        batch is empty: the step still adds noise and counts)."""
        edm = self.denoiser.edm
        rnd = torch.randn(x.shape[0], 1, device=x.device, generator=generator)
        sigma = (rnd * edm.p_std + edm.p_mean).exp()
        noise = torch.randn(x.shape, device=x.device, generator=generator) * sigma
        if len(x):
            grads, losses = per_example_grads(self.denoiser, x, noise, sigma, labels)
            for name, p in zip(self.names, self.params, strict=True):
                p.grad_sample = grads[name]
            self.last_loss = float(losses.mean())
        else:
            for p in self.params:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        self.steps += 1
        return self.last_loss

    def guarantee(self) -> PrivacyGuarantee:
        """What the steps run so far spent."""
        spent = self.accountant.get_epsilon(self.delta) if self.steps else 0.0
        return PrivacyGuarantee(
            epsilon=float(spent),
            delta=self.delta,
            target_epsilon=self.config.epsilon,
            accountant=self.config.accountant,
            max_grad_norm=self.config.max_grad_norm,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=self.steps,
            records=self.n,
        )


def guarantee_text(card: dict) -> str:
    """One sentence for a model card from a manifest's ``differential_privacy`` section."""

    def num(key: str) -> str:
        value = card.get(key)
        return f"{value:.3g}" if isinstance(value, int | float) else "?"

    return (
        f"Trained with differential privacy: (epsilon = {num('epsilon')}, delta = {num('delta')}) "
        f"per {card.get('unit', 'record')}, {str(card.get('accountant', '?')).upper()} accountant; "
        f"per-record clipping norm {num('max_grad_norm')}, noise multiplier "
        f"{num('noise_multiplier')}, sampling rate {num('sample_rate')}, {card.get('steps', '?')} "
        f"steps (target epsilon {num('target_epsilon')}). Covers: {card.get('covers', '?')}."
    )
