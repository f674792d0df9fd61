"""Code nobody calls and tests that can quietly skip: a component method beyond the component
contract must be used somewhere, and no test may skip because a required package (or cogsim
itself) is missing — that would hide a broken install as a green run."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from cogsim.component import Component
from cogsim.registry import registry

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {p: p.read_text(encoding="utf-8") for top in ("cogsim", "tests") for p in (ROOT / top).rglob("*.py")}
IMPORT_NAMES = {"pyyaml": "yaml"}  # distribution name → module name where they differ


def required_modules() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in re.findall(r'"([^"]+)"', block)}
    assert "torch" in names
    return {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names} | {"cogsim"}


def test_component_methods_beyond_the_contract_are_used():
    contract = set(dir(Component))
    unused = []
    for name in registry.names():
        for attr, fn in vars(registry.get(name)).items():
            if attr.startswith("_") or attr in contract or not inspect.isfunction(fn):
                continue
            mentions = sum(len(re.findall(rf"\b{attr}\b", text)) for text in SOURCES.values())
            definitions = sum(len(re.findall(rf"\bdef {attr}\b", text)) for text in SOURCES.values())
            if mentions <= definitions:
                unused.append(f"{name}.{attr}")
    assert not unused, f"never called: {unused}"


def test_no_test_skips_for_a_required_package():
    required, found = required_modules(), []
    for path, text in SOURCES.items():
        if ROOT / "tests" not in path.parents:
            continue
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).split(".")[0] in required):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: importorskip({node.args[0].value!r})")
    assert not found, found
