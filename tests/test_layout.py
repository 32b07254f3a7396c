"""The layout is the architecture: each sub-package of app/ and jobs/ says what it owns, and
others use it only through its face (the names its __init__.py lists in __all__)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for top in ("app", "jobs")
    for init in (ROOT / top).glob("*/__init__.py")
)


def _sources() -> list[Path]:
    return sorted(p for top in ("app", "jobs", "simulator") for p in (ROOT / top).rglob("*.py"))


def _package_of(module: str) -> str | None:
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def test_the_tree_has_its_packages() -> None:
    assert {"app.web", "app.dashboard", "app.fleet", "app.store", "app.cli"} <= set(PACKAGES)
    assert {"jobs.boundary", "jobs.agents", "jobs.kinds", "jobs.fleet", "jobs.report"} <= set(
        PACKAGES
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_owns_and_names_its_face(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__ and len(module.__doc__.split()) >= 12, package
    for name in getattr(module, "__all__", []):
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it lacks"


def test_nothing_reaches_into_another_package() -> None:
    reaching: list[str] = []
    for path in _sources():
        parts = path.relative_to(ROOT).with_suffix("").parts
        me = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mine = _package_of(me)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            target = _package_of(node.module)
            if target is None or target == mine:
                continue
            face = importlib.import_module(target)
            if node.module != target:
                reaching.append(f"{me} imports {node.module}")
            else:
                reaching += [
                    f"{me} imports {target}.{a.name}, not in its __all__"
                    for a in node.names
                    if a.name not in getattr(face, "__all__", [])
                ]
    assert reaching == []
