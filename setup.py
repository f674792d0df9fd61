"""Packaging beyond pyproject.toml: which files the package holds.

The C kernels (compiled on first use, cogsim/native.py) ship next to their wrappers. The top-level
``architectures/`` folder, the one source of the bundled architecture files, ships inside the
package as ``cogsim/architectures``, so that a bare name (``cogsim run engram_snn``) works after a
plain ``pip install`` (cogsim/graph/bundled.py finds it in either place).
"""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["cogsim", "cogsim.*"]), "cogsim.architectures"],
      package_dir={"cogsim.architectures": "architectures"},
      package_data={"": ["*.c", "*.h"], "cogsim.architectures": ["*.yaml"]})
