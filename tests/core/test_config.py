"""The one config convention: frozen dataclasses round-trip through JSON, tuples included."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from core.config import JSONConfig
from core.cxr.diffusion import DiffusionConfig, SamplerConfig
from core.cxr.unet import UNetConfig
from core.cxr.vae import CXRVAEConfig
from core.diffusion.ddpm import DDPMSchedule
from core.diffusion.edm import EDMConfig
from core.ehrdiff.network import NetworkConfig
from core.flexgen.networks import DenoiserConfig
from core.flexgen.train import FlexGenConfig


@dataclass(frozen=True)
class _Toy(JSONConfig):
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] | None = None
    name: str = "x"


def test_tuples_come_back_as_tuples_and_unknown_keys_are_refused() -> None:
    toy = _Toy((3, 4), (0.5, 1.5), "y")
    raw = json.loads(json.dumps(toy.to_json()))
    assert raw == {"sizes": [3, 4], "pair": [0.5, 1.5], "name": "y"}
    assert _Toy.from_json(raw) == toy
    assert _Toy.from_json({"pair": None}) == _Toy()
    with pytest.raises(TypeError):
        _Toy.from_json({"sizes": [1], "colour": "red"})


@pytest.mark.parametrize(
    "config",
    [
        CXRVAEConfig(),
        UNetConfig(channel_mult=(1, 2, 4), attention_levels=(1, 2)),
        DiffusionConfig(target="residual", residual_scale=0.6),
        SamplerConfig(anchor="prior", change_rms=(0.4, 0.02), x0_bound=3.0),
        EDMConfig(),
        NetworkConfig(dim=10, units=(8, 8)),
        DDPMSchedule(),
        DenoiserConfig(dim=12),
        FlexGenConfig(),
    ],
)
def test_every_model_config_round_trips(config) -> None:
    raw = json.loads(json.dumps(config.to_json()))
    assert type(config).from_json(raw) == config
