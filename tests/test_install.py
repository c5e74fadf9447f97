"""The install files agree: pyproject's dependencies and test extra == environment.yml's pip list."""

from __future__ import annotations

import tomllib

import yaml

from hils_kit.core.paths import PROJ_ROOT


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((PROJ_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(project["dependencies"] + project["optional-dependencies"]["test"])
    assert "bitsandbytes>=0.50" in pip  # QLoRA runs on the CPU in the tests
    assert "torch==2.13.0" in pip


def test_hils_entry_point_is_declared():
    project = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hils"] == "hils_kit.cli:main"
