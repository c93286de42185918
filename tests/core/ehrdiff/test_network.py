"""The denoiser's fast paths (one noise level per batch, in-place inference) change no output."""

import pytest
import torch

from core.diffusion.edm import EDMConfig, EDMDenoiser
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig


def _reference_forward(net: EHRDiffMLP, x, c_noise, labels):
    """The network written row by row, as before the fast paths: conditioning per row, no
    in-place operations."""
    emb = net.time_embed(c_noise)
    if net.label_embed is not None:
        emb = emb + net.label_embed(labels)
    emb = net.act(emb)
    h, saved = x, {}
    for i, (layer, cond, norm) in enumerate(zip(net.layers, net.cond, net.norms, strict=True)):
        h = layer(h) + cond(emb)
        if i in net.skips:
            h = h + saved[net.skips[i]]
        h = net.act(norm(h))
        saved[i] = h
    return net.out(h)


@pytest.mark.parametrize("n_classes", [0, 2])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_denoiser_matches_the_row_by_row_network(n_classes, per_row, grad):
    torch.manual_seed(0)
    net = EHRDiffMLP(NetworkConfig(dim=40, units=(64, 32, 32, 64), n_classes=n_classes))
    torch.nn.init.normal_(net.out.weight, std=0.2)  # zero-initialised otherwise
    denoiser = EDMDenoiser(net, EDMConfig(sigma_data=0.3))
    n = 90
    x = torch.randn(n, 40)
    sigma = torch.rand(n) * 5 + 0.01 if per_row else torch.tensor(1.7)
    labels = torch.randint(0, n_classes + 1, (n,)) if n_classes else None
    s = sigma.reshape(-1, 1).expand(n, 1)
    sd2 = 0.3**2
    expected = sd2 / (s**2 + sd2) * x + s * 0.3 / (s**2 + sd2).sqrt() * _reference_forward(
        net, x / (s**2 + sd2).sqrt(), s.log().flatten() / 4, labels
    )
    with torch.set_grad_enabled(grad):
        got = denoiser(x, sigma, labels)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    if grad:  # the training path still back-propagates
        got.sum().backward()
        assert net.layers[0].weight.grad is not None


def test_one_level_per_batch_or_per_row_only():
    net = EHRDiffMLP(NetworkConfig(dim=8, units=(16, 16)))
    with pytest.raises(ValueError, match="3 noise levels for 5 rows"):
        EDMDenoiser(net, EDMConfig())(torch.zeros(5, 8), torch.ones(3))
