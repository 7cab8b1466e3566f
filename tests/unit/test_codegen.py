"""The runtime library's generated copy of the event contract (`speakerline schemas generate`): fresh, complete,
and checked for staleness."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from speakerline.events import EVENT_CLASSES, models
from speakerline_tools import codegen, repo


def test_generated_models_and_bundled_schemas_are_fresh() -> None:
    assert codegen.stale() == [], "run `speakerline schemas generate`"


def test_every_schema_has_exactly_one_event_class_with_its_generated_model() -> None:
    titles = set()
    for name, major, file in codegen.schema_files(repo.root()):
        title = json.loads(file.read_text())["title"]
        titles.add(title)
        (cls,) = [cls for cls in EVENT_CLASSES.values() if title == cls.TYPE]
        model = "".join(part.capitalize() for part in re.split(r"[._]", name)) + f"V{major}Data"
        assert cls.DATA.__name__ == model, (title, cls.DATA.__name__)
        assert cls.DATA is getattr(models, model)
        assert EVENT_CLASSES[title] is cls
    assert set(EVENT_CLASSES) == titles, "an event class without a schema"


@pytest.mark.slow
def test_a_stale_generated_file_is_named(tmp_path: Path) -> None:
    root = repo.root()
    shutil.copytree(root / "schemas", tmp_path / "schemas")
    shutil.copy(root / "pyproject.toml", tmp_path)  # the ruff settings models.py is formatted with
    (tmp_path / codegen.EVENTS_PACKAGE).mkdir(parents=True)
    for generated in (codegen.BUNDLE, codegen.MODELS):
        shutil.copy(root / generated, tmp_path / generated)
    assert codegen.stale(tmp_path) == []

    models_file = tmp_path / codegen.MODELS
    models_file.write_text(models_file.read_text().replace("class JobCompletedV1Data(", "class Edited("))
    assert codegen.stale(tmp_path) == [models_file]
    (tmp_path / codegen.BUNDLE).unlink()
    assert codegen.stale(tmp_path) == [tmp_path / codegen.BUNDLE, models_file]

    assert codegen.generate(tmp_path) == [tmp_path / codegen.BUNDLE, models_file]
    assert codegen.stale(tmp_path) == []
    assert models_file.read_text() == (root / codegen.MODELS).read_text()
