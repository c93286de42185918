"""Differentially private EHRDiff training (issue #34): per-record gradients, accounting, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoints import verify_checkpoint
from core.cli import flags_to_argv
from core.diffusion.edm import EDMConfig, EDMDenoiser
from core.ehrdiff.dp import (
    DPConfig,
    default_delta,
    per_example_grads,
    plan_noise,
    require_one_record_per_patient,
)
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig
from core.ehrdiff.train import TrainConfig, build_parser, config_from_args
from core.errors import ConfigError


def tiny_denoiser(n_classes: int) -> EDMDenoiser:
    torch.manual_seed(0)
    net = EHRDiffMLP(NetworkConfig(dim=3, units=(8, 4, 8), embed_dim=4, n_classes=n_classes))
    for p in net.out.parameters():  # zero at init; random here so every gradient is non-zero
        torch.nn.init.normal_(p, std=0.3)
    return EDMDenoiser(net, EDMConfig(sigma_data=0.7))


@pytest.mark.parametrize("n_classes", [0, 2])
def test_per_example_gradients_match_a_loop_over_examples(n_classes):
    denoiser = tiny_denoiser(n_classes)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=gen)
    sigma = torch.rand(5, 1, generator=gen) * 2 + 0.1
    noise = torch.randn(5, 3, generator=gen) * sigma
    labels = torch.tensor([0, 1, 2, 1, 0]) if n_classes else None  # 2 = the null label
    grads, losses = per_example_grads(denoiser, x, noise, sigma, labels)
    sd = denoiser.edm.sigma_data
    for i in range(5):
        denoiser.zero_grad()
        lab = None if labels is None else labels[i : i + 1]
        out = denoiser(x[i : i + 1] + noise[i : i + 1], sigma[i : i + 1], lab)
        weight = (sigma[i] ** 2 + sd**2) / (sigma[i] * sd) ** 2
        loss = (weight * (out - x[i : i + 1]) ** 2).sum() / 3
        loss.backward()
        torch.testing.assert_close(losses[i], loss.detach())
        for name, p in denoiser.named_parameters():
            expected = torch.zeros_like(p) if p.grad is None else p.grad
            torch.testing.assert_close(grads[name][i], expected, msg=name)


def test_one_row_gives_what_it_gives_in_a_batch_of_one_noise_level():
    """A single row skips the unique-conditions fast path; the result is the batch's row."""
    denoiser = tiny_denoiser(2)
    x, labels = torch.randn(4, 3), torch.tensor([0, 1, 1, 2])
    with torch.no_grad():
        batch = denoiser.net(x, torch.tensor([0.3]), labels)
        rows = torch.cat(
            [denoiser.net(x[i : i + 1], torch.tensor([0.3]), labels[i : i + 1]) for i in range(4)]
        )
    torch.testing.assert_close(rows, batch)


def test_accountant_known_answer():
    from opacus.accountants import RDPAccountant

    # DP-SGD's MNIST setting (noise 1.1, batch 256 of 60,000, 60 epochs, delta 1e-5): the
    # epsilon Opacus 1.6.0's RDP accountant states for it.
    accountant = RDPAccountant()
    accountant.history.append((1.1, 256 / 60_000, 14_062))
    assert accountant.get_epsilon(1e-5) == pytest.approx(2.5966, abs=1e-3)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_planned_noise_keeps_epsilon_within_the_target(accountant):
    from opacus.accountants import create_accountant

    sigma, rate, delta = plan_noise(DPConfig(2.0, 1e-5, accountant=accountant), 10_000, 100, 500)
    assert rate == 0.01 and delta == 1e-5 and sigma > 0.5
    spent = create_accountant(accountant)
    spent.history.append((sigma, rate, 500))
    assert 1.9 < spent.get_epsilon(delta) <= 2.0


def test_delta_must_be_below_one_over_n():
    assert default_delta(1000) < 1 / 1000
    with pytest.raises(ConfigError, match="not below 1/n"):
        plan_noise(DPConfig(1.0, delta=0.01), 1000, 10, 10)


def test_several_records_per_patient_are_refused():
    require_one_record_per_patient(np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(ConfigError, match="2 patients but number 3"):
        require_one_record_per_patient(np.array(["a", "b", "a"], dtype=object))
    with pytest.raises(ConfigError, match="patient ids"):
        require_one_record_per_patient(None)


def test_dp_flags_rebuild_the_config():
    from core.ehrdiff import train

    for dp in (DPConfig(3.0), DPConfig(3.0, 1e-6, 0.5, "prv")):
        config = TrainConfig(steps=50, dp=dp)
        command = train.equivalent_command(config, "cpu")
        argv = flags_to_argv(command.parser, {"cohort": "c", "out": "m"} | command.flags)
        assert train.config_from_args(command.parser.parse_args(argv)) == config
        assert "--dp-epsilon" in argv
    with pytest.raises(ConfigError, match="need --dp-epsilon"):
        config_from_args(
            build_parser().parse_args(["--cohort", "c", "--out", "o", "--dp-delta", "1e-6"])
        )


def toy_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [
        f"p{i},{rng.normal(60, 10):.1f},{int(rng.random() < 0.3)},{int(rng.random() < 0.2)}"
        for i in range(80)
    ]
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(["id,age,smoker,y", *rows]) + "\n")
    return path


def test_a_dp_training_writes_its_guarantee_into_a_verified_manifest(tmp_path):
    from core.ehrdiff.pipeline import EHRDiffModel
    from core.ehrdiff.train import main

    out = tmp_path / "dp"
    argv = [
        "--cohort", "wide_table", "--input", f"table={toy_csv(tmp_path)}", "--option",
        "id_column=id", "--option", "label_column=y", "--out", str(out), "--steps", "8",
        "--units", "8,8", "--batch-size", "16", "--eval-steps", "2", "--device", "cpu",
        "--dp-epsilon", "5",
    ]  # fmt: skip
    assert main(argv) == 0
    manifest = verify_checkpoint(out)  # hash and the no-training-data guard
    dp = manifest.data_card["differential_privacy"]
    assert 0 < dp["epsilon"] <= dp["target_epsilon"] == 5.0
    assert dp["delta"] == pytest.approx(default_delta(64)) and dp["steps"] == 8
    assert dp["sample_rate"] == 16 / 64 and dp["noise_multiplier"] > 0
    assert dp["accountant"] == "rdp" and dp["max_grad_norm"] == 1.0
    assert "--dp-epsilon 5" in manifest.training_command
    assert json.loads((out / "manifest.json").read_text())["config"]["train"]["dp"]["epsilon"] == 5
    EHRDiffModel.load(out, device="cpu")


def test_the_readme_card_states_the_guarantee():
    from core.store.scrub import card_text

    card = {"epsilon": 2.5, "delta": 1e-5, "accountant": "prv", "steps": 10, "unit": "record"}
    text = card_text({"model_id": "m", "data_card": {"differential_privacy": card}})
    assert "## Differential privacy" in text
    assert "(epsilon = 2.5, delta = 1e-05) per record, PRV accountant" in text
