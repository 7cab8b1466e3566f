"""docs/configuration.md lists the environment variables of every `Settings` field, and only variables something
reads: a setting missing from the table is one nobody finds, a stale row one that silently does nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from diarization.engines.vertex import DEFAULT_START_TIMEOUT_S
from diarization.progress import DEFAULT_INTERVAL_S
from postprocess.timeline_rules import DEFAULT_CONFIG
from speakerline.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# Documented because they change what speakerline does, but read by a library rather than through `Settings`.
READ_BY_LIBRARIES = {"OTEL_EXPORTER_OTLP_ENDPOINT"}


def documented_variables(page: str) -> set[str]:
    """The variables named in the first column of the page's tables."""
    names: set[str] = set()
    for line in page.splitlines():
        if line.startswith("|"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def settings_variables() -> dict[str, list[str]]:
    """Each `Settings` field's environment variables (its validation aliases); fields without one are not read
    from the environment under a documented name."""
    variables = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            variables[name] = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            variables[name] = [alias]
    return variables


def test_every_settings_variable_is_in_the_table() -> None:
    documented = documented_variables(PAGE.read_text())
    # A secret's `<NAME>_SECRET` companion (a Secret Manager version) is documented with its `<NAME>`.
    missing = [
        f"{field}: {variable}"
        for field, variables in settings_variables().items()
        for variable in variables
        if variable not in documented and variable.removesuffix("_SECRET") not in documented
    ]
    assert missing == []


def test_every_variable_in_the_table_is_read() -> None:
    read = {variable for variables in settings_variables().values() for variable in variables} | READ_BY_LIBRARIES
    assert sorted(documented_variables(PAGE.read_text()) - read) == []


def test_the_table_is_read_from_its_first_column_only() -> None:
    page = "| variable | used by | meaning |\n| --- | --- | --- |\n| `A_B`, `C` (or `_SECRET`) | all | not `D_E` |\n"
    assert documented_variables(page) == {"A_B", "C"}
    assert documented_variables(PAGE.read_text()) >= {"GOOGLE_CLOUD_PROJECT", "SPEAKERLINE_ENGINE"}


def documented_defaults(page: str, variable: str) -> list[float]:
    """The seconds in the parentheses that end the description of `variable`'s row, e.g. `(0.5 s, 0.3 s)`."""
    (row,) = [line for line in page.splitlines() if line.startswith("|") and f"`{variable}`" in line.split("|")[1]]
    description = row.rstrip(" |").split("|")[-1]
    last = re.findall(r"\(([^()]*)\)\s*$", description)
    assert last, row
    return [float(seconds) for seconds in re.findall(r"(\d+(?:\.\d+)?) s\b", last[0])]


# Defaults that live in the code that applies them (the setting is None when unset), not in `Settings`.
@pytest.mark.parametrize(
    ("variable", "defaults"),
    [
        ("SPEAKERLINE_GPU_START_TIMEOUT_S", [DEFAULT_START_TIMEOUT_S]),
        ("SPEAKERLINE_PROGRESS_INTERVAL_S", [DEFAULT_INTERVAL_S]),
        ("SPEAKERLINE_MERGE_GAP_S", [DEFAULT_CONFIG.merge_gap_s, DEFAULT_CONFIG.min_segment_s]),
        ("SPEAKERLINE_WEBHOOK_TIMEOUT_S", [Settings.model_fields["webhook_timeout_s"].default]),
    ],
)
def test_the_documented_defaults_are_the_codes(variable: str, defaults: list[float]) -> None:
    assert documented_defaults(PAGE.read_text(), variable) == defaults
