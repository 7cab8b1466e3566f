"""The deployment files the static checks read, and how they find HCL blocks in Terraform's text."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = REPO / "infra" / "topology.yaml"
TERRAFORM = REPO / "infra" / "terraform"
DOCKER = REPO / "infra" / "docker"
COMPOSE_FILE = REPO / "docker-compose.yml"

TF_FILES = (
    "versions.tf",
    "variables.tf",
    "main.tf",
    "pubsub.tf",
    "storage.tf",
    "firestore.tf",
    "iam.tf",
    "run.tf",
    "secrets.tf",
    "monitoring.tf",
    "outputs.tf",
    "moved.tf",
)


def resource_block(tf: str, rtype: str, name: str) -> str:
    """The text of `resource "rtype" "name" { ... }` (brace matching; HCL strings here hold no stray braces)."""
    match = re.search(rf'resource\s+"{rtype}"\s+"{name}"\s*\{{', tf)
    assert match, f'resource "{rtype}" "{name}" not found in infra/terraform'
    depth, i = 1, match.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(tf[i], 0)
        i += 1
    return tf[match.start() : i]


def resource_blocks(tf: str, rtype: str) -> dict[str, str]:
    """Every `resource "rtype" "<name>"` block, by name."""
    return {name: resource_block(tf, rtype, name) for name in re.findall(rf'resource\s+"{rtype}"\s+"(\w+)"', tf)}


def local_block(tf: str, name: str) -> str:
    """The text of `name = {...}` in a locals block (up to the matching brace)."""
    match = re.search(rf"^\s*{name}\s*=\s*\{{", tf, re.M)
    assert match, f"local.{name} not found"
    depth, i = 1, match.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(tf[i], 0)
        i += 1
    return tf[match.start() : i]


def for_each(block: str) -> str:
    match = re.search(r"^\s*for_each\s*=\s*(.+)$", block, re.M)
    assert match, "no for_each"
    return match.group(1).strip()
