"""CAM++ on ONNX Runtime: the network exported once per machine and kept in the model cache.

The export (``torch.onnx.export``, TorchScript tracing) costs more CPU than the rest of the embedded engine's load
(about 8 of its 12 s), and every diarization worker start, ``speakerline eval`` and test session paid it. The file
is named after what the graph depends on (the weights, torch's version, the opset), so new weights or a new torch
export anew; a file that cannot be read is exported again and replaced, and a cache that cannot be written is
logged and skipped (the export then stays in memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import structlog
import torch
from torch import nn

log = structlog.get_logger()

OPSET = 17


def session(network: nn.Module, feat_dim: int, *, num_threads: int | None, cache_dir: Path | None) -> Any:
    """An ONNX Runtime CPU session running ``network`` ((1, frames, feat_dim) fbank -> (1, embedding)), from
    ``cache_dir`` when it holds this network's export, else exported now (and written there)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads or 0
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    cached = cache_dir / f"campplus-{export_key(network, feat_dim)}.onnx" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            return onnxruntime.InferenceSession(str(cached), options, providers=providers)
        except Exception as exc:  # a damaged file: export again and replace it
            log.warning("campplus.onnx_cache_unreadable", path=str(cached), error=str(exc))
    exported = export(network, feat_dim)
    if cached is not None:
        _write_atomically(cached, exported)
    return onnxruntime.InferenceSession(exported, options, providers=providers)


def export(network: nn.Module, feat_dim: int) -> bytes:
    """``network`` as an ONNX graph taking any number of frames."""
    example = torch.zeros(1, 300, feat_dim)
    exported = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing; the output is checked in tests
        torch.onnx.export(
            network,
            (example,),
            exported,  # the TorchScript exporter writes to file objects too
            input_names=["feats"],
            output_names=["embedding"],
            dynamic_axes={"feats": {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return exported.getvalue()


def export_key(network: nn.Module, feat_dim: int) -> str:
    """What the exported graph depends on: the weights, the exporter (torch) and the opset."""
    digest = hashlib.blake2b(f"{torch.__version__}|{OPSET}|{feat_dim}".encode(), digest_size=12)
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_atomically(path: Path, content: bytes) -> None:
    """Through a temporary file in the same folder: processes loading at once never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(content)
        try:
            os.replace(tmp.name, path)
        finally:
            with contextlib.suppress(OSError):
                Path(tmp.name).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("campplus.onnx_cache_unwritable", path=str(path), error=str(exc))
