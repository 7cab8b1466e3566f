# syntax=docker/dockerfile:1
# One image per CPU service: docker build -f infra/docker/service.Dockerfile --build-arg SERVICE=ingest -t speakerline-ingest .
#
# Default command: the functions-framework CloudEvent target `speakerline_${SERVICE}.main:entrypoint` on $PORT
# (Cloud Run behind Pub/Sub push). `python -m speakerline_${SERVICE}` runs the same service as a streaming-pull
# worker instead (docker-compose does that against the emulators).
#
# SERVICE=diarization builds a CPU-only diarization image for the local stack; the cloud worker uses
# diarization.Dockerfile (CUDA).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build-arg SERVICE is required (ingest, diarization, postprocess, notification, projector)" >&2; exit 1; }
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependency metadata first, sources after: edits to the code keep the pip layer cached only when the build
# backend can resolve without sources, so the project is installed in one step (non-editable, no tests).
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY schemas ./schemas
COPY services ./services
RUN pip install --upgrade pip setuptools wheel \
 && pip install ".[${SERVICE}]" \
 && python -c "import importlib, sys; importlib.import_module(sys.argv[1])" "speakerline_${SERVICE}"

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE=${SERVICE} \
    SPEAKERLINE_TOPOLOGY=/opt/speakerline/topology.yaml \
    PYANNOTE_METRICS_ENABLED=false \
    PORT=8080
RUN groupadd --system --gid 10001 speakerline \
 && useradd --system --uid 10001 --gid speakerline --home-dir /home/speakerline --create-home --shell /usr/sbin/nologin speakerline
COPY --from=build /opt/venv /opt/venv
COPY infra/topology.yaml /opt/speakerline/topology.yaml
COPY infra/docker/serve-cloudevent.sh /usr/local/bin/serve-cloudevent
RUN chmod 0755 /usr/local/bin/serve-cloudevent \
 && serve-cloudevent --print-source >/dev/null
USER 10001:10001
WORKDIR /home/speakerline
EXPOSE 8080
CMD ["serve-cloudevent"]
