"""The C kernels as files: every one is shipped as package data, compiles without a warning, and its
cache key follows its sources, headers and flags."""
from __future__ import annotations

import copy
import importlib
import importlib.resources
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import cogsim
from cogsim import native

KERNEL_MODULES = ["cogsim.htm.native_tm", "cogsim.htm.native_sp", "cogsim.snn.native", "cogsim.engram.native_hash",
                  "cogsim.engram.native_gather"]
PACKAGE_ROOT = Path(cogsim.__file__).parent


def libraries() -> list[native.NativeLibrary]:
    for name in KERNEL_MODULES:
        importlib.import_module(name)
    return list(native.LIBRARIES)


def test_every_c_file_belongs_to_a_library():
    used = {(lib.package, name) for lib in libraries() for name in (lib.source, *lib.headers)}
    used |= {("cogsim", name) for name in native.SHARED_HEADERS}
    on_disk = {(".".join(("cogsim", *p.parent.relative_to(PACKAGE_ROOT).parts)), p.name)
               for p in PACKAGE_ROOT.rglob("*") if p.suffix in (".c", ".h")}
    assert on_disk == used


def test_no_python_file_holds_c_source():
    offenders = [str(p.relative_to(PACKAGE_ROOT)) for p in PACKAGE_ROOT.rglob("*.py")
                 if "#include <" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_sources_are_read_as_package_resources():
    lib = next(lib for lib in libraries() if lib.name == "lif")
    files = lib.files()
    assert list(files)[0] == "native.c" and set(files) == {"native.c", "native_neurons.h", "native_parallel.h"}
    assert files["native.c"] == importlib.resources.files("cogsim.snn").joinpath("native.c").read_text()
    assert "-DCOGSIM_ABI=2" in lib.flags()


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="no C compiler")
def test_every_kernel_compiles_without_warnings(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")

    def build(lib: native.NativeLibrary) -> str:
        try:
            lib.compile(compiler, tmp_path / f"{lib.name}.so", ("-Wall", "-Wextra", "-Werror"))
        except RuntimeError as e:
            return f"{lib.name}: {e}"
        return ""

    libs = libraries()
    assert {lib.name for lib in libs} >= {"htm_tm", "htm_sp", "lif", "engram_hash", "engram_gather"}
    with ThreadPoolExecutor(max_workers=len(libs)) as pool:  # compilers run side by side
        failures = [msg for msg in pool.map(build, libs) if msg]
    assert failures == []
    assert all((tmp_path / f"{lib.name}.so").stat().st_size > 0 for lib in libs)


def test_a_kernel_without_its_constants_refuses_to_compile(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        pytest.skip("no C compiler")
    lib = copy.copy(next(lib for lib in libraries() if lib.name == "htm_tm"))
    lib.defines = {"COGSIM_ABI": 1}
    with pytest.raises(RuntimeError, match="SALT_LU"):
        lib.compile(compiler, tmp_path / "tm.so")


def test_cache_key_covers_sources_headers_and_flags(monkeypatch):
    lib = next(lib for lib in libraries() if lib.name == "lif")
    base = lib.cache_key("cc 1.0")
    assert lib.cache_key("cc 1.0") == base
    assert lib.cache_key("cc 1.1") != base
    other = copy.copy(lib)
    other.defines = {**lib.defines, "COGSIM_ABI": 99}
    assert other.cache_key("cc 1.0") != base
    real_files = native.NativeLibrary.files
    for changed in ("native.c", "native_neurons.h", "native_parallel.h"):
        def files(self, changed=changed):
            out = real_files(self)
            out[changed] += "\n"
            return out
        monkeypatch.setattr(native.NativeLibrary, "files", files)
        assert lib.cache_key("cc 1.0") != base, changed
    monkeypatch.undo()
    flagged = copy.copy(lib)
    flagged.cflags = [*lib.cflags, "-O2"]
    assert flagged.cache_key("cc 1.0") != base


SNN_ARCH = """\
name: t
model: {d_model: 16, n_heads: 2, seq_len: 10, vocab_size: 300}
nodes:
  embed: {type: embedding}
  block: {type: block}
  snn: {type: snn, neurons: 32, steps: 2, mode: sequence}
  head: {type: lm_head}
stack: [embed, block, snn, head]
"""


@pytest.fixture
def no_state(monkeypatch):
    """Fresh kernel states and warning flag (restored afterwards)."""
    for lib in libraries():
        monkeypatch.setattr(lib, "_state", {})
    monkeypatch.setattr(native, "_warned_no_compiler", False)
    return monkeypatch


@pytest.mark.parametrize("how", ["CC", "PATH"])
def test_without_a_compiler_one_warning_line_and_the_status_says_why(no_state, how, tmp_path, capsys):
    if how == "CC":
        no_state.setenv("CC", str(tmp_path / "missing-cc"))
        why = f"CC={tmp_path / 'missing-cc'} is not found"
    else:
        no_state.delenv("CC", raising=False)
        no_state.setenv("PATH", str(tmp_path))  # no gcc, no cc
        why = "neither gcc nor cc is on PATH"
    for lib in libraries():
        assert lib.get() is None and why in lib.status()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0] and "torch paths run instead" in err[0]  # once, one line
    assert native.describe() == f"native kernels: off (no C compiler: {why}); the torch paths run instead " \
                                "(same results, slower)"
    assert all(state.startswith("off (no C compiler") for state in native.kernel_states().values())


def test_check_shows_the_native_kernels(no_state, write_arch, tmp_path, capsys):
    from cogsim.cli import main

    arch = write_arch(SNN_ARCH)
    assert main(["check", str(arch)]) == 0
    assert "lif ready" in capsys.readouterr().out.splitlines()[-1]
    no_state.setenv("CC", str(tmp_path / "missing-cc"))
    assert main(["check", str(arch)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("native kernels: off (no C compiler: CC=")


def test_switch_variables_turn_kernels_off_and_say_so(no_state):
    no_state.setenv("COGSIM_HTM_NATIVE", "0")  # every HTM kernel, the spatial pooler's included
    states = native.kernel_states()
    assert states["htm_tm"] == "off (disabled by COGSIM_HTM_NATIVE=0)"
    assert states["htm_sp"] == "off (disabled by COGSIM_HTM_NATIVE=0)"
    sp = next(lib for lib in libraries() if lib.name == "htm_sp")
    assert sp.get() is None and "disabled by COGSIM_HTM_NATIVE=0" in sp.status()
    assert states["lif"] in ("ready", "on")
