"""What a Terraform module would create, read from its HCL and evaluated by Terraform itself, with no provider.

python-hcl2 parses every `.tf` file; `terraform console` evaluates a resource's `for_each` and the attributes asked
for, over the module's own locals and variables, so the names and settings the tests compare with the topology are
the ones `terraform plan` would compute, not a copy of its logic. A reference to a resource instance (in an
attribute or a local) becomes the string `"<type>.<name>[<key>]"`, so a test can follow it to that instance; locals
that still depend on a resource or a data source (known only after apply) are left out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

# A reference to something that exists only once applied: a resource of a provider, a data source.
_APPLY_TIME = re.compile(r"\b(?:google_[a-z0-9_]+|random_[a-z0-9_]+|terraform_data)\.[a-z0-9_]+|\bdata\.[a-z]")
_INSTANCE_REF = re.compile(r"\b(google_[a-z0-9_]+)\.([a-z0-9_]+)\[([^\[\]*]+)\]\.[a-z_]+")
_LOCAL_REF = re.compile(r"\blocal\.([a-z0-9_]+)")


@dataclass(frozen=True)
class Module:
    path: Path
    resources: Mapping[tuple[str, str], Mapping[str, Any]]
    locals: Mapping[str, Any]

    @classmethod
    def load(cls, path: Path) -> Module:
        resources: dict[tuple[str, str], Mapping[str, Any]] = {}
        locals_: dict[str, Any] = {}
        for tf in sorted(path.glob("*.tf")):
            doc = hcl2.loads(tf.read_text())
            for block in doc.get("locals", []):
                locals_.update({k: v for k, v in block.items() if not k.startswith("__")})
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        resources[(rtype.strip('"'), name.strip('"'))] = body
        return cls(path, resources, locals_)

    def resource_names(self, rtype: str) -> set[str]:
        return {name for kind, name in self.resources if kind == rtype}

    def instances(
        self, rtype: str, name: str, attributes: Mapping[str, str], variables: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Each instance key of `resource "rtype" "name"` => the attributes asked for (label => dotted path into
        the body, nested blocks included), as Terraform evaluates them with these variables."""
        body = self.resources[(rtype, name)]
        fields = ", ".join(f"{label} = {_instance_expr(_at(body, path))}" for label, path in attributes.items())
        for_each = _expr(body["for_each"])
        return self.evaluate(f"{{ for each_key, each_value in {for_each} : each_key => {{ {fields} }} }}", variables)

    def evaluate(self, expression: str, variables: Mapping[str, str]) -> Any:
        """The value of an HCL expression over this module's locals and variables."""
        terraform = shutil.which("terraform")
        assert terraform, "terraform is not installed (docs/deploy.md: 1. Prerequisites)"
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "variables.tf").write_text((self.path / "variables.tf").read_text())
            (Path(scratch) / "locals.tf").write_text(self._evaluable_locals())
            args = [arg for key, value in variables.items() for arg in ("-var", f"{key}={value}")]
            done = subprocess.run(
                [terraform, "console", *args],
                input=f"jsonencode({expression})\n",
                capture_output=True,
                text=True,
                timeout=60,
                cwd=scratch,
            )
        assert done.returncode == 0, done.stderr
        return json.loads(json.loads(done.stdout))

    def _evaluable_locals(self) -> str:
        """The locals that need nothing from an apply, as HCL, `path.module` pointing at the real module."""
        kept: dict[str, Any] = {}
        pending = {
            k: json.dumps(_with_instance_refs(v))
            for k, v in self.locals.items()
            if not _APPLY_TIME.search(_INSTANCE_REF.sub("instance", json.dumps(v)))
        }
        while grew := [k for k, s in pending.items() if set(_LOCAL_REF.findall(s)) <= set(kept)]:
            for key in grew:
                kept[key] = json.loads(pending.pop(key).replace("${path.module}", str(self.path.resolve())))
        lines = [hcl2.reconstruct(hcl2.from_dict({k: v}, apply_format=False)).strip() for k, v in kept.items()]
        return "locals {\n" + "\n".join(lines) + "\n}\n"


def _with_instance_refs(value: Any) -> Any:
    """`value` with every `<type>.<name>[<key>].<attr>` replaced by the string `"<type>.<name>[<key>]"`."""
    if isinstance(value, str):
        return _INSTANCE_REF.sub(lambda m: f'"{m.group(1)}.{m.group(2)}[${{{m.group(3)}}}]"', value)
    if isinstance(value, list):
        return [_with_instance_refs(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_instance_refs(v) for k, v in value.items()}
    return value


def _at(body: Mapping[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        value = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else value
        value = value[part]
    return value


def _expr(value: Any) -> str:
    """python-hcl2's rendering of an attribute value back into an HCL expression."""
    if isinstance(value, str):
        return value[2:-1] if value.startswith("${") and value.endswith("}") else value
    return json.dumps(value)


def _instance_expr(value: Any) -> str:
    expr = _expr(value)
    expr = re.sub(r"\beach\.key\b", "each_key", re.sub(r"\beach\.value\b", "each_value", expr))
    return str(_with_instance_refs(expr))
