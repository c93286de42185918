import pytest

from core.errors import RegistryError
from core.registry import MODELS, ModelSpec, Registry


def spec(model_id, task="generate-ehr"):
    return ModelSpec(model_id, "ehrdiff", task, "Title", "desc", ("codes",))


def test_register_get_filter_and_duplicates():
    reg: Registry[ModelSpec] = Registry("model")
    reg.register(spec("a"))
    reg.register(spec("b", task="forecast-cxr"))
    assert reg.get("a").id == "a" and "b" in reg and len(reg) == 2
    assert [s.id for s in reg.where(task="forecast-cxr")] == ["b"]
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(spec("a"))
    with pytest.raises(RegistryError, match="Unknown model 'zzz'. Known: a, b"):
        reg.get("zzz")
    with pytest.raises(RegistryError, match="Invalid"):
        reg.register(spec(" padded"))


def test_global_registry_entries_are_unique_and_typed():
    ids = [s.id for s in MODELS]
    assert len(ids) == len(set(ids))
    assert all(s.task in ("generate-ehr", "forecast-cxr") for s in MODELS)
