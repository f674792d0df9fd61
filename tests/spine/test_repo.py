"""Repository promises: the README's two commands, CI calling the test command, and every
architecture file passing `check` and `graph`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cogsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.match(r"# cogsim\n\n```bash\n(.*?)\n```", text, re.S)
    assert block, "README must open with a bash block"
    return block.group(1).splitlines()


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    install_run, install_test = readme_commands()
    assert "python -m cogsim run architectures/" in install_run and install_run.startswith("pip install")
    assert install_test.endswith("python -m pytest") and install_test.startswith("pip install")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_test in ci


def test_main_command_architecture_exists():
    arch = readme_commands()[0].split("python -m cogsim run ")[1].split()[0]
    assert (ROOT / arch).exists()


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda p: p.stem)
def test_check_and_graph_work_on_every_architecture(arch, tmp_path, capsys):
    assert main(["check", str(arch)]) == 0
    assert "is valid" in capsys.readouterr().out
    out = tmp_path / f"{arch.stem}.png"
    assert main(["graph", str(arch), "-o", str(out)]) == 0
    assert out.stat().st_size > 5000
