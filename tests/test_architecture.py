"""House rules that keep core a plain library, and the layers it is built in."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core import PUBLIC_API

ROOT = Path(__file__).resolve().parents[1]

# Layers, bottom up: base -> data -> encoding -> diffusion / generation -> metrics -> model
# families -> loading -> release -> report -> tools / ui -> pages. A module may import its own
# layer and the layers listed for it, nothing else: families never import each other, metrics
# never import a family, core never imports ui, pages or tools. Metrics sit below the families
# (as in the design notes; #19 first drafted them above) because the training commands report
# fidelity with the same metric code the Review uses.
BASE = {
    "core",
    "core.errors",
    "core.faults",
    "core.atomic",
    "core.config",
    "core.progress",
    "core.device",
    "core.distributed",
    "core.checkpoints",
    "core.manifest_guard",
    "core.registry",
    "core.markdown",
}
LAYER_OF_PREFIX = {
    "core.data": "data",
    "core.cli": "data",
    "core.training": "data",
    "core.encoding": "encoding",
    "core.diffusion": "diffusion",
    "core.generation": "generation",
    "core.metrics": "metrics",
    "core.ehrdiff": "ehrdiff",
    "core.flexgen": "flexgen",
    "core.cxr": "cxr",
    "core.ehrpd": "ehrpd",
    "core.loading": "loading",
    "core.store": "store",
    "core.audit": "audit",
    "core.release": "release",
    "core.report": "report",
    "tools": "tools",
    "benchmarks": "tools",
    "ui": "ui",
    "pages": "pages",
    "app": "pages",
}
_FAMILY_BELOW = {"base", "data", "encoding", "diffusion", "generation", "metrics"}
_FAMILIES = {"ehrdiff", "flexgen", "cxr", "ehrpd"}
_CORE = _FAMILY_BELOW | _FAMILIES | {"loading", "store", "audit", "release", "report"}
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "data": {"base"},
    "encoding": {"base", "data"},
    "diffusion": {"base"},
    "generation": {"base", "data"},
    "metrics": {"base", "data", "encoding"},
    "ehrdiff": _FAMILY_BELOW,
    "flexgen": _FAMILY_BELOW,
    "cxr": _FAMILY_BELOW,
    "ehrpd": _FAMILY_BELOW,
    "loading": _FAMILY_BELOW | _FAMILIES,
    "store": _FAMILY_BELOW | _FAMILIES | {"loading"},
    "audit": _FAMILY_BELOW | _FAMILIES | {"loading"},
    "release": {"base", "data", "encoding", "generation", "metrics"},
    "report": {"base", "data", "encoding", "generation", "metrics", "release"},
    "tools": _CORE,
    "ui": _CORE,
    "pages": _CORE | {"ui"},
}


def layer_of(module: str) -> str | None:
    if module in BASE:
        return "base"
    for prefix, layer in LAYER_OF_PREFIX.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None  # a third-party module


def _project_imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "core":  # a public name resolves to its own module's layer
                out += [(node.lineno, PUBLIC_API.get(a.name, "core")) for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def layer_violations(module: str, source: str) -> list[str]:
    """The imports of ``module`` that reach a layer it may not use."""
    own = layer_of(module)
    if own is None:
        return []
    bad = []
    for lineno, target in _project_imports(ast.parse(source)):
        layer = layer_of(target)
        if layer is not None and layer != own and layer not in ALLOWED[own]:
            bad.append(f"{module}:{lineno} imports {target} ({own} -> {layer})")
    return bad


def _project_modules() -> list[tuple[str, Path]]:
    out = []
    for top in ("core", "ui", "pages", "tools", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out.append((".".join(parts).removesuffix(".__init__"), path))
    return out + [("app", ROOT / "app.py")]


def test_every_project_module_has_a_layer():
    assert [m for m, _ in _project_modules() if layer_of(m) is None] == []


def test_imports_follow_the_layers():
    offenders = [v for m, p in _project_modules() for v in layer_violations(m, p.read_text())]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "line"),
    [
        (
            "core.metrics.suite",
            "from core.ehrdiff.pipeline import EHRDiffModel",
        ),  # metrics -> family
        ("core.flexgen.pipeline", "import core.ehrdiff.pipeline"),  # family -> family
        ("core.data.records", "from core.generation import SyntheticSet"),  # data -> generation
        ("core.encoding.vectors", "from core.metrics import fidelity"),  # encoding -> metrics
        ("core.metrics.privacy", "from core.release.gate import GateThresholds"),  # -> release
        ("core.cxr.evaluate", "from core.report.export import file_stem"),  # family -> report
        ("core.report.export", "from ui import state"),  # core -> ui
        ("core.generation.sampling", "from core import load_model"),  # via the public API
    ],
)
def test_a_planted_upward_import_is_caught(module, line):
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text() + "\n" + line + "\n"
    assert layer_violations(module, source) != []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit_or_ui():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "core").rglob("*.py")
        if _imports(p) & {"streamlit", "ui"}
    ]
    assert offenders == []


def test_importing_all_of_core_loads_no_streamlit():
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "core").rglob("*.py")
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('streamlit' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_core_has_no_print_calls():
    """Library code logs; only command-line entry points (__main__.py) print their result."""
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_unsafe_torch_load():
    for path in list((ROOT / "core").rglob("*.py")) + list((ROOT / "ui").rglob("*.py")):
        text = path.read_text()
        if "torch.load(" in text:
            assert "weights_only=True" in text, path
