# syntax=docker/dockerfile:1
# GPU image of the diarization worker (Cloud Run with an NVIDIA L4, or a Vertex AI CustomJob on g2-standard-8 +
# NVIDIA_L4 with the same image):
#   docker build -f infra/docker/diarization.Dockerfile -t speakerline-diarization .
#
# Base: python:3.11-slim with the pinned PyPI torch, whose wheels bundle the CUDA runtime and cuDNN (nvidia-*
# packages); the host (Cloud Run GPU, Vertex AI) provides the driver. This is exactly the stack the tests run,
# with no second Python or torch coming from a base image.

# HF_HUB_OFFLINE is deliberately not set: the worker loads the model from the hub (token from Secret Manager,
# SPEAKERLINE_HF_TOKEN_SECRET) or from a gs:// mirror (SPEAKERLINE_PYANNOTE_MODEL).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip install --upgrade pip \
 && pip install ".[diarization]" \
 && python -c "import torch, diarization.wiring; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

FROM ${PYTHON_IMAGE} AS runtime
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
CMD ["python", "-m", "speakerline.worker", "diarization"]
