"""The layers run one way: flows -> tasks -> core (segflow) -> storage; the CLI sits on top.

Every module's imports are read with ``ast`` (function-level imports included), so a lazy
import that runs the wrong way fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "segflow", "tasks", "flows", "segflow_cli", "benchmarks")
#: What each layer may not import (by top-level name).
FORBIDDEN = {
    "storage": {
        "segflow",
        "segflow_cli",
        "tasks",
        "flows",
        "benchmarks",
        "prefect",
        "prefect_dask",
        "tensorflow",
        "keras",
    },
    "segflow": {"segflow_cli", "tasks", "flows", "benchmarks", "prefect", "prefect_dask"},
    "tasks": {"segflow_cli", "flows", "benchmarks"},
    "flows": {"segflow_cli", "benchmarks"},
    "segflow_cli": {"benchmarks"},
    "benchmarks": {"segflow_cli"},
}
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    """One imported name: ``module`` (absolute) and, for ``from m import n``, ``name``."""

    importer: str
    module: str
    name: str | None
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(name: str, path: Path) -> list[Import]:
    found = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the importing package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, module] if module else base)
            found += [Import(name, module, alias.name, node.lineno) for alias in node.names]
    return found


ALL_IMPORTS = [imp for name, path in project_modules().items() for imp in imports_of(name, path)]


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_every_package_is_scanned() -> None:
    layers = {_layer(name) for name in project_modules()}
    assert layers == set(PACKAGES)
    assert len(ALL_IMPORTS) > 500  # the scan reads real code, not an empty tree


@pytest.mark.parametrize("layer", PACKAGES)
def test_imports_run_one_way(layer: str) -> None:
    wrong = [
        f"{imp.importer}:{imp.line} imports {imp.module}"
        for imp in ALL_IMPORTS
        if _layer(imp.importer) == layer and _layer(imp.module) in FORBIDDEN[layer]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def _private_module(module: str) -> str | None:
    """The package a private module belongs to, if ``module`` is (inside) a private module."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:index])
    return None


def test_no_private_names_across_modules() -> None:
    modules = project_modules()
    wrong = []
    for imp in ALL_IMPORTS:
        if _layer(imp.module) not in PACKAGES:
            continue
        owner = _private_module(imp.module)
        importer_package = (
            imp.importer
            if modules[imp.importer].name == "__init__.py"
            else (imp.importer.rpartition(".")[0])
        )
        if owner is not None and not (importer_package + ".").startswith(owner + "."):
            wrong.append(f"{imp.importer}:{imp.line} imports private module {imp.module}")
        target = f"{imp.module}.{imp.name}" if imp.name else imp.module
        if (
            imp.name
            and imp.name.startswith("_")
            and not imp.name.startswith("__")
            and target not in modules  # a private submodule is checked above
            and imp.module != imp.importer
        ):
            wrong.append(f"{imp.importer}:{imp.line} imports private name {imp.module}.{imp.name}")
    assert not wrong, "\n".join(wrong)


def test_private_rule_catches_a_violation(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("from segflow.backfill import _identity\nimport segflow.sources._common\n")
    found = imports_of("segflow.report", path)
    assert [(i.module, i.name) for i in found] == [
        ("segflow.backfill", "_identity"),
        ("segflow.sources._common", None),
    ]
    assert _private_module("segflow.sources._common") == "segflow.sources"


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_module_size(name: str) -> None:
    lines = len(project_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it at a seam (limit {MAX_LINES})"


def _fresh_modules(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return {line.split(".")[0] for line in out.stdout.split()}


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        # the bottom layer: nothing of segflow, no TensorFlow
        ("import storage", {"segflow", "tensorflow", "keras", "prefect"}),
        (
            "import storage.sequences, storage.predictions, storage.urls, storage.chunks",
            {"segflow", "tensorflow", "keras", "prefect"},
        ),
        # the scheduler is pure: planning a schedule needs no framework
        ("import segflow.engine.scheduler", {"tensorflow", "keras", "prefect"}),
        # configuration models double as flow parameters; they stay light
        ("import segflow.config", {"tensorflow", "keras", "prefect"}),
    ],
)
def test_imports_stay_light(statement: str, absent: set[str]) -> None:
    loaded = _fresh_modules(statement)
    assert not loaded & absent, f"{statement!r} loaded {sorted(loaded & absent)}"


def test_importing_the_core_has_no_side_effects() -> None:
    code = (
        "import os\nbefore = dict(os.environ)\nimport segflow, segflow.config, segflow.ingest\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"
