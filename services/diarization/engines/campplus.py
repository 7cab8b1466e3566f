"""CAM++ speaker-embedding network, wrapped as a pyannote.audio ``Model``.

The network below is a faithful re-implementation of CAM++ (Wang et al., "CAM++: A Fast and
Efficient Network for Speaker Verification Using Context-Aware Masking", Interspeech 2023) as
published in 3D-Speaker (Apache-2.0):
https://github.com/modelscope/3D-Speaker/blob/main/speakerlab/models/campplus/DTDNN.py and
.../campplus/layers.py. Module and parameter names match 3D-Speaker's exactly, so its released
state dicts (e.g. ``campplus_cn_en_common.pt`` from ``iic/speech_campplus_sv_zh_en_16k-common_advanced``,
192-dim embeddings) load with ``strict=True``. We carry our own copy because the maintained
package that ships it (``speakerlab``) pulls in funasr/modelscope/transformers/datasets.

On CPU the network runs on ONNX Runtime (:meth:`CAMPPlusEmbedding.run_on_onnxruntime`): exported
from the same module at a machine's first load and kept in the model cache, it gives the same
embeddings (within 1e-5) 1.5 times faster on one thread than eager torch (EVAL.md, 2026-12-01).

Features follow 3D-Speaker's inference recipe: 80-dim Kaldi fbank (25 ms / 10 ms, povey
window, no dither) via the pure-Python ``torchaudio.compliance.kaldi.fbank``, mean-normalised
over the frames that are embedded.

``CAMPPlusEmbedding`` makes the network usable by pyannote's ``SpeakerDiarization`` pipeline:
pyannote calls ``model(waveforms, weights=masks)`` with one (chunk, local speaker) mask per
waveform; we embed only the fbank frames where the mask is on (the frames where that local
speaker speaks), which is what 3D-Speaker's own diarization does with VAD sub-segments.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi
from pyannote.audio.core.model import Model
from torch import nn

__all__ = ["CAMPPlus", "CAMPPlusEmbedding"]

_FRAME_LENGTH_MS = 25.0
_FRAME_SHIFT_MS = 10.0


class BasicResBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    in_planes,
                    self.expansion * planes,
                    kernel_size=1,
                    stride=(stride, 1),
                    bias=False,
                ),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        result: torch.Tensor = F.relu(out)
        return result


class FCM(nn.Module):
    """Front-end convolution module (2-D residual blocks over the fbank 'image')."""

    def __init__(self, m_channels: int = 32, feat_dim: int = 80) -> None:
        super().__init__()
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(
            BasicResBlock(m_channels, m_channels, stride=2),
            BasicResBlock(m_channels, m_channels, stride=1),
        )
        self.layer2 = nn.Sequential(
            BasicResBlock(m_channels, m_channels, stride=2),
            BasicResBlock(m_channels, m_channels, stride=1),
        )
        self.conv2 = nn.Conv2d(m_channels, m_channels, kernel_size=3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        batch, channels, freq, time = out.shape
        return out.reshape(batch, channels * freq, time)


def _batchnorm_relu(channels: int) -> nn.Sequential:
    block = nn.Sequential()
    block.add_module("batchnorm", nn.BatchNorm1d(channels))
    block.add_module("relu", nn.ReLU(inplace=True))
    return block


class TDNNLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if padding < 0:
            padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )
        self.nonlinear = _batchnorm_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.nonlinear(self.linear(x))
        return out


class CAMLayer(nn.Module):
    """Context-aware masking: local TDNN output gated by global + segment-level context."""

    def __init__(
        self,
        bn_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        bias: bool,
        reduction: int = 2,
    ) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(
            bn_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        mask: torch.Tensor = self.sigmoid(self.linear2(self.relu(self.linear1(context))))
        return y * mask

    @staticmethod
    def seg_pooling(x: torch.Tensor, seg_len: int = 100) -> torch.Tensor:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        shape = seg.shape
        seg = seg.unsqueeze(-1).expand(*shape, seg_len).reshape(*shape[:-1], -1)
        return seg[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bn_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.nonlinear1 = _batchnorm_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _batchnorm_relu(bn_channels)
        self.cam_layer = CAMLayer(
            bn_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
        return out


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        out_channels: int,
        bn_channels: int,
        kernel_size: int,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(
                in_channels + i * out_channels,
                out_channels,
                bn_channels,
                kernel_size,
                dilation=dilation,
                bias=bias,
            )
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.nonlinear = _batchnorm_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.nonlinear(x))
        return out


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class DenseLayer(nn.Module):
    """Final projection; 3D-Speaker's ``config_str='batchnorm_'`` = BatchNorm without affine."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x.unsqueeze(-1)).squeeze(-1) if x.dim() == 2 else self.linear(x)
        out: torch.Tensor = self.nonlinear(x)
        return out


class CAMPPlus(nn.Module):
    """CAM++ (3D-Speaker layout). Input (batch, frames, feat_dim) fbank; output embeddings."""

    def __init__(
        self,
        feat_dim: int = 80,
        embedding_size: int = 192,
        growth_rate: int = 32,
        bn_size: int = 4,
        init_channels: int = 128,
    ) -> None:
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict([("tdnn", TDNNLayer(channels, init_channels, 5, stride=2, dilation=1, padding=-1))])
        )
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            block = CAMDenseTDNNBlock(
                num_layers=num_layers,
                in_channels=channels,
                out_channels=growth_rate,
                bn_channels=bn_size * growth_rate,
                kernel_size=kernel_size,
                dilation=dilation,
            )
            self.xvector.add_module(f"block{i + 1}", block)
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2, bias=False))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _batchnorm_relu(channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.xvector(self.head(x.permute(0, 2, 1)))
        return out


class CAMPPlusEmbedding(Model):
    """pyannote.audio ``Model`` computing CAM++ embeddings from raw 16 kHz waveforms.

    ``forward(waveforms, weights=None)``: waveforms (batch, 1, samples); weights (batch, frames)
    are per-frame activity masks over the same span (any frame rate). Frames whose weight is
    below 0.5 are dropped before the network sees them. A row whose mask keeps fewer than
    ``min_frames`` fbank frames (too little speech to say anything) gets a NaN embedding, which
    pyannote's clustering ignores.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_channels: int = 1,
        feat_dim: int = 80,
        embedding_size: int = 192,
        min_frames: int = 20,
    ) -> None:
        super().__init__(sample_rate=sample_rate, num_channels=num_channels)
        self.save_hyperparameters("feat_dim", "embedding_size", "min_frames")
        self.feat_dim = feat_dim
        self.embedding_size = embedding_size
        self.min_frames = min_frames
        self.fbank_sample_rate = sample_rate
        self.campplus = CAMPPlus(feat_dim=feat_dim, embedding_size=embedding_size)
        # ONNX Runtime session running ``campplus`` (see run_on_onnxruntime); torch when None
        self._session: Any = None

    @classmethod
    def from_state_dict_file(cls, path: Path) -> CAMPPlusEmbedding:
        state = torch.load(path, map_location="cpu", weights_only=True)
        embedding_size = int(state["xvector.dense.linear.weight"].shape[0])
        model = cls(embedding_size=embedding_size)
        model.campplus.load_state_dict(state, strict=True)
        model.eval()
        return model

    def run_on_onnxruntime(self, num_threads: int | None = 1, cache_dir: Path | None = None) -> None:
        """Run the network on ONNX Runtime's CPU provider from now on (:mod:`.campplus_onnx`: exported once,
        kept in ``cache_dir``). ``num_threads``: ONNX Runtime's intra-op threads (``None``: its default, every
        core)."""
        from . import campplus_onnx

        self._session = campplus_onnx.session(
            self.campplus, self.feat_dim, num_threads=num_threads, cache_dir=cache_dir
        )

    def _network(self, feats: torch.Tensor) -> torch.Tensor:
        """(1, frames, feat_dim) -> (1, embedding_size)."""
        if self._session is None:
            result: torch.Tensor = self.campplus(feats)
            return result
        (embedding,) = self._session.run(None, {"feats": feats.cpu().numpy()})
        return torch.from_numpy(embedding)

    @property
    def dimension(self) -> int:
        return self.embedding_size

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """(samples,) float waveform in [-1, 1] -> (frames, feat_dim) log-mel fbank."""
        feats: torch.Tensor = kaldi.fbank(
            waveform.unsqueeze(0),
            num_mel_bins=self.feat_dim,
            frame_length=_FRAME_LENGTH_MS,
            frame_shift=_FRAME_SHIFT_MS,
            sample_frequency=float(self.fbank_sample_rate),
            dither=0.0,
        )
        return feats

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        embeddings = []
        nan = torch.full((self.dimension,), float("nan"), device=waveforms.device)
        for i in range(waveforms.shape[0]):
            if weights is not None and not bool((weights[i] > 0.5).any()):
                embeddings.append(nan)
                continue
            feats = self.fbank(waveforms[i, 0].float())
            if weights is not None:
                # map each fbank frame (10 ms hop) to the mask frame that covers its centre
                num_feats, num_weights = feats.shape[0], weights.shape[1]
                num_samples = waveforms.shape[-1]
                centres = (torch.arange(num_feats, device=feats.device) * _FRAME_SHIFT_MS + _FRAME_LENGTH_MS / 2) * (
                    self.fbank_sample_rate / 1000.0
                )
                index = (centres / num_samples * num_weights).long().clamp(0, num_weights - 1)
                keep = weights[i, index] > 0.5
                feats = feats[keep]
            if feats.shape[0] < self.min_frames:
                if weights is None:
                    # lets pyannote's ``min_num_samples`` probe find our minimum input length
                    raise ValueError(f"need >= {self.min_frames} fbank frames")
                embeddings.append(nan)
                continue
            feats = feats - feats.mean(dim=0, keepdim=True)
            embeddings.append(self._network(feats.unsqueeze(0))[0])
        return torch.stack(embeddings)
