import pytest
import torch

from core.device import dtype_policy, make_generator, select_device
from core.errors import DeviceError


def test_auto_and_explicit_cpu(monkeypatch):
    monkeypatch.delenv("CSS_DEVICE", raising=False)
    assert select_device("cpu") == torch.device("cpu")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert select_device().type == expected


def test_env_var_overrides(monkeypatch):
    monkeypatch.setenv("CSS_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    monkeypatch.setenv("CSS_DEVICE", "tpu")
    with pytest.raises(DeviceError, match="Unknown device 'tpu'"):
        select_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_missing_gpu_is_an_error_not_a_silent_fallback():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        select_device("cuda")


def test_generators_are_seeded_and_independent_of_global_rng():
    a = torch.randn(4, generator=make_generator(7))
    torch.manual_seed(123)
    b = torch.randn(4, generator=make_generator(7))
    assert torch.equal(a, b) and not torch.equal(a, torch.randn(4, generator=make_generator(8)))
    with pytest.raises(DeviceError):
        make_generator(-1)


def test_cpu_dtype_policy_is_float32():
    policy = dtype_policy(torch.device("cpu"))
    assert policy.param == torch.float32 and policy.autocast is None
