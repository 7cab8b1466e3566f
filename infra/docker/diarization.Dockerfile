# syntax=docker/dockerfile:1
# GPU image of the diarization worker (Cloud Run with an NVIDIA L4, or a Vertex AI CustomJob on g2-standard-8 +
# NVIDIA_L4 with the same image):
#   docker build -f infra/docker/diarization.Dockerfile -t speakerline-diarization .
#
# Base: NVIDIA's CUDA 12.8 `base` image (the CUDA runtime and the container toolkit's hooks, no toolkit); the
# host (Cloud Run GPU, Vertex AI) provides the driver. The pinned PyPI torch 2.9.1 is built for CUDA 12.8 and
# brings cuDNN and cuBLAS as nvidia-* wheels, so the base needs nothing more. Python is the same 3.11 the tests
# run (a python-build-standalone interpreter installed by uv): Ubuntu 24.04's own is 3.12.
#
# Digests are pinned (tags move); refresh them with `docker buildx imagetools inspect <image:tag>` and rebuild.
# HF_HUB_OFFLINE is deliberately not set: the worker loads the model from the hub (token from Secret Manager,
# SPEAKERLINE_HF_TOKEN_SECRET) or from a gs:// mirror (SPEAKERLINE_PYANNOTE_MODEL).

#checkov:skip=CKV_DOCKER_7:every FROM is an ARG below, pinned by tag and sha256 digest (checkov does not expand ARGs)
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04@sha256:133c78a0575303be34164d0b90137a042172bdf60696af01a3c424ab402d86e2
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.18@sha256:5713fa8217f92b80223bc83aac7db36ec80a84437dbc0d04bbc659cae030d8c9

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN uv python install 3.11.14 \
 && uv venv --python 3.11.14 /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# Non-editable, the diarization extras only (never the tooling); the import check fails the build early.
RUN uv pip install --python /opt/venv/bin/python ".[diarization]" \
 && /opt/venv/bin/python -c "import torch, diarization.wiring; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

FROM ${CUDA_IMAGE} AS runtime
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
# The venv's interpreter is a link into /opt/python: both keep their build-stage paths.
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
COPY infra/topology.yaml /opt/speakerline/topology.yaml
COPY --chmod=0755 infra/docker/pull-worker.sh /usr/local/bin/pull-worker
USER 10001:10001
WORKDIR /home/speakerline
# Cloud Run probes $PORT itself (run.tf startup probe); a Vertex AI CustomJob has no health check.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/pull-worker"]
CMD ["python", "-m", "speakerline.worker", "diarization"]
