"""What each container image installs, and how big it is, without a Docker engine.

An image is the Dockerfile's base plus what `pip install ".[<extras>]"` adds. The Python layer is measured: the
distributions that install pulls in are resolved from pyproject.toml through the installed packages' own metadata
(markers and extras evaluated), and sized from their RECORD files, with the pins `make install` installed here.
The bases are not on this machine (no registry): their sizes are the estimates in `BASES`, and the report says so.
The CPU diarization image takes torch's CPU wheels, which are not installed here either: its torch is estimated.
`make image-sizes` prints the table and writes `.speakerline/image-sizes.json`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

MB = 1_000_000

#: base image => (estimated uncompressed MB, where the estimate comes from). Not measured: no registry here.
BASES: dict[str, tuple[float, str]] = {
    "python:3.11-slim-bookworm": (125.0, "Debian 12 slim rootfs (~75 MB) plus CPython 3.11 in /usr/local (~50 MB)"),
    "nvidia/cuda:12.8.1-base-ubuntu24.04": (
        275.0,
        "Ubuntu 24.04 rootfs (~80 MB), the CUDA 12.8 runtime and compat libraries of the base flavour (~120 MB) "
        "and the python-build-standalone 3.11 that uv installs (~75 MB)",
    ),
}
#: torch 2.9.1+cpu and torchaudio 2.9.1+cpu from download.pytorch.org (the CPU worker), in place of the CUDA
#: build and its nvidia-* wheels installed here. An estimate: the CPU wheels are not installed on this machine.
TORCH_CPU_MB = 800.0
GPU_ONLY_PREFIXES = ("nvidia-", "triton")


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    base: str
    extras: tuple[str, ...]
    torch: str = "none"  # none | cuda | cpu


IMAGES = (
    *(
        Image(f"speakerline-{s}", "service.Dockerfile", "python:3.11-slim-bookworm", (s,))
        for s in ("ingest", "postprocess", "notification", "projector", "api")
    ),
    Image(
        "speakerline-diarization",
        "diarization.Dockerfile",
        "nvidia/cuda:12.8.1-base-ubuntu24.04",
        ("diarization",),
        "cuda",
    ),
    Image("speakerline-diarization-cpu", "service.Dockerfile", "python:3.11-slim-bookworm", ("diarization",), "cpu"),
)


def _project(root: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return project


def _app_mb(root: Path) -> float:
    """The project's own files an image copies (libs/, services/); the images write no bytecode."""
    files = (p for d in ("libs", "services") for p in (root / d).rglob("*") if "__pycache__" not in p.parts)
    return sum(p.stat().st_size for p in files if p.is_file()) / MB


def closure(requirements: Iterable[str]) -> set[str]:
    """Every installed distribution (canonical name) that installing `requirements` brings in."""
    expanded: dict[str, set[str]] = {}  # distribution => the extras whose requirements were followed ("" = its own)
    pending = [(text, "") for text in requirements]
    while pending:
        text, extra = pending.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        requires = metadata.distribution(name).requires or []
        for wanted in {"", *req.extras} - expanded.setdefault(name, set()):
            expanded[name].add(wanted)
            pending += [(r, wanted) for r in requires]
    return set(expanded)


def image_requirements(image: Image, root: Path) -> list[str]:
    project = _project(root)
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    runtime: list[str] = project["dependencies"]  # type: ignore[assignment]
    return [*runtime, *(r for extra in image.extras for r in extras[extra])]


def installed_mb(name: str) -> float:
    files = metadata.distribution(name).files or []
    return sum(f.size or 0 for f in files) / MB


def report(root: Path) -> list[dict[str, object]]:
    rows = []
    app_mb = _app_mb(root)
    for image in IMAGES:
        dists = closure(image_requirements(image, root))
        python_mb = sum(installed_mb(d) for d in dists)
        if image.torch == "cpu":
            cuda_build = {d for d in dists if re.fullmatch(r"torch(audio)?", d) or d.startswith(GPU_ONLY_PREFIXES)}
            python_mb += TORCH_CPU_MB - sum(installed_mb(d) for d in cuda_build)
        base_mb, base_source = BASES[image.base]
        rows.append(
            {
                **asdict(image),
                "distributions": len(dists),
                "has_torch": "torch" in dists,
                "python_layer_mb": round(python_mb, 1),
                "app_mb": round(app_mb, 1),
                "base_mb_estimate": base_mb,
                "base_source": base_source,
                "total_mb_estimate": round(base_mb + python_mb + app_mb, 0),
            }
        )
    return rows


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    rows = report(root)
    out = root / ".speakerline" / "image-sizes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| image | base (estimate) | Python layer (measured) | total (estimate) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        note = " (torch CPU estimated)" if row["torch"] == "cpu" else ""
        print(
            f"| `{row['name']}` | {row['base']} ({row['base_mb_estimate']:.0f} MB) | "
            f"{row['distributions']} distributions, {row['python_layer_mb']:.0f} MB{note} | "
            f"{row['total_mb_estimate']:.0f} MB |"
        )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
