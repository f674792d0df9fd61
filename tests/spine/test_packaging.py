"""What a plain ``pip install`` gives: a wheel holding the bundled architectures (the same bytes as
the top-level ``architectures/`` folder), usable by bare name from an empty folder, and
``cogsim --version``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cogsim
from cogsim.cli import main
from cogsim.errors import SpecError
from cogsim.graph import bundled
from cogsim.graph.spec import read_spec

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel . --no-deps`` of a copy of the source tree (the checkout itself stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("cogsim", "architectures"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                 "-w", str(tmp / "dist")], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    (found,) = (tmp / "dist").glob("cogsim-*.whl")
    return found


def test_wheel_holds_the_architectures_and_the_version(wheel):
    assert wheel.name.startswith(f"cogsim-{cogsim.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("cogsim/architectures/")}
    assert ARCHITECTURES and shipped == {p.name: p.read_bytes() for p in ARCHITECTURES}


def test_wheel_holds_the_c_kernels(wheel):
    with zipfile.ZipFile(wheel) as z:
        shipped = {n: z.read(n) for n in z.namelist() if n.endswith((".c", ".h"))}
    sources = {str(p.relative_to(ROOT)): p.read_bytes() for p in (ROOT / "cogsim").rglob("*")
               if p.suffix in (".c", ".h")}
    assert len(sources) >= 7 and shipped == sources


@pytest.mark.slow
def test_installed_wheel_checks_a_bundled_name_from_an_empty_folder(wheel, tmp_path):
    target, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    proc = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy, not this checkout
    proc = _run([sys.executable, "-m", "cogsim", "check", "engram_snn"], cwd=empty, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"({target / 'cogsim' / 'architectures' / 'engram_snn.yaml'}) is valid" in proc.stdout.replace("\n", "")
    build = "from cogsim.engram import native_gather as g; assert g.library() is not None, g.LIBRARY.status()"
    proc = _run([sys.executable, "-c", build], cwd=empty, env={**env, "COGSIM_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr  # a kernel builds from the installed package's C file
    proc = _run([sys.executable, "-m", "cogsim", "--version"], cwd=empty, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == f"cogsim {cogsim.__version__}"
    assert list(empty.iterdir()) == []


def test_bundled_names_resolve_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bundled.names() == [p.stem for p in ARCHITECTURES]
    for name in ("engram_snn", "engram_snn.yaml"):
        assert read_spec(name).file == str(ROOT / "architectures" / "engram_snn.yaml")
    local = tmp_path / "engram_snn.yaml"  # a file of that name in the current folder comes first
    local.write_text((ROOT / "architectures" / "transformer.yaml").read_text())
    assert read_spec("engram_snn.yaml").name == "transformer"
    assert main(["check", "transformer"]) == 0 and "is valid" in capsys.readouterr().out


def test_unknown_name_lists_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        read_spec("engram_snx")
    assert str(info.value) == ("engram_snx: file not found; bundled architectures (usable by name): "
                               + ", ".join(p.stem for p in ARCHITECTURES))


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"cogsim {cogsim.__version__}\n"
