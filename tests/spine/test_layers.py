"""Data flows one way: no module imports a layer above its own, and no memory room imports another
room or the benchmarks. Read from the source (every import statement, also those inside functions)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cogsim"
ROOMS = ["engram", "htm", "snn", "workspace"]
#: applications built on one room (anomaly detection on htm)
APPS = {"anomaly": "htm"}
#: package (or module) → the cogsim packages it must never import
FORBIDDEN = {
    "evaluate": ["train", "ablation", "commands", "bench"],
    "train": ["ablation", "commands", "bench"],
    "graph": ["model", "train", "evaluate", "ablation", "commands", "bench", *ROOMS],
    "model": ["train", "evaluate", "ablation", "commands", "bench", *ROOMS],
    **{room: ["graph", "model", "train", "evaluate", "ablation", "commands", "bench", *APPS,
              *(r for r in ROOMS if r != room)] for room in ROOMS},
    **{app: ["graph", "model", "train", "evaluate", "ablation", "commands", "bench",
             *(r for r in ROOMS if r != room)] for app, room in APPS.items()},
}


def imported_packages(path: Path) -> set[str]:
    """The second component of every ``cogsim.x…`` name the file imports (``cogsim.train.trainer`` → ``train``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "cogsim" and len(parts) > 1:
                out.add(parts[1])
    return out


def sources(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


def test_the_reader_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import cogsim.errors\nfrom cogsim import graph\ndef f():\n    from cogsim.train.trainer import Trainer\n")
    assert imported_packages(f) == {"errors", "graph", "train"}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_import_runs_back_up(layer):
    files = sources(layer)
    assert files and all(f.exists() for f in files)
    wrong = [f"{f.relative_to(PACKAGE.parent)} imports cogsim.{p}" for f in files
             for p in sorted(imported_packages(f) & set(FORBIDDEN[layer]))]
    assert not wrong, "\n".join(wrong)


def test_only_the_command_line_knows_the_benchmarks():
    """Benches live in cogsim/bench/ and only the ``bench`` command reaches them."""
    wrong = [str(f.relative_to(PACKAGE.parent)) for f in PACKAGE.rglob("*.py")
             if f.parent.name not in ("bench", "commands") and "bench" in imported_packages(f)]
    assert not wrong


@pytest.mark.parametrize("module", ["model.py", "graph/build.py"])
def test_the_model_and_the_graph_builder_name_no_component_type(module):
    """What a node needs from the graph goes through the component's plan hooks (check_plan, bind)."""
    from cogsim.registry import BUILTINS

    tree = ast.parse((PACKAGE / module).read_text())
    words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    words |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    words |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    named = sorted(w for w in words if w in BUILTINS or w in ("tie_to", "set_candidate_names"))
    assert not named
