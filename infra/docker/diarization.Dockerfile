# syntax=docker/dockerfile:1
# GPU image of the diarization worker (Cloud Run with an NVIDIA L4, or a Vertex AI CustomJob on g2-standard-8 +
# NVIDIA_L4 with the same image):
#   docker build -f infra/docker/diarization.Dockerfile -t speakerline-diarization .
#
# Base: the PyTorch CUDA runtime image (CUDA + cuDNN + a torch build for them, Python 3.11 in /opt/conda), so
# `.[diarization]` (pyannote.audio) reuses that torch instead of pulling a second multi-GB CUDA wheel set. When
# the diarization extra pins another torch, bump TORCH_IMAGE to the matching tag; the build checks Python 3.11
# and that torch still imports.
#
# HF_HUB_OFFLINE is deliberately not set: the worker loads the model from the hub (token from Secret Manager,
# SPEAKERLINE_HF_TOKEN_SECRET) or from a gs:// mirror (SPEAKERLINE_PYANNOTE_MODEL).

ARG TORCH_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

FROM ${TORCH_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" \
 && python -m venv --system-site-packages /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY schemas ./schemas
COPY services ./services
# The venv sees the base image's torch (system site-packages) and installs only what is missing on top.
RUN pip install --upgrade pip setuptools wheel \
 && pip install ".[diarization]" \
 && python -c "import torch, speakerline_diarization; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

FROM ${TORCH_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPEAKERLINE_TOPOLOGY=/opt/speakerline/topology.yaml \
    PYANNOTE_METRICS_ENABLED=false \
    HOME=/home/speakerline \
    XDG_CACHE_HOME=/home/speakerline/.cache \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN groupadd --system --gid 10001 speakerline \
 && useradd --system --uid 10001 --gid speakerline --home-dir /home/speakerline --create-home --shell /usr/sbin/nologin speakerline \
 && mkdir -p /home/speakerline/.cache \
 && chown -R speakerline:speakerline /home/speakerline
COPY --from=build /opt/venv /opt/venv
COPY infra/topology.yaml /opt/speakerline/topology.yaml
COPY --chmod=0755 infra/docker/pull-worker.sh /usr/local/bin/pull-worker
USER 10001:10001
WORKDIR /home/speakerline
ENTRYPOINT ["/usr/local/bin/pull-worker"]
CMD ["python", "-m", "speakerline_diarization"]
