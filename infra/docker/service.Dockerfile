# syntax=docker/dockerfile:1
# One image per CPU service: docker build -f infra/docker/service.Dockerfile --build-arg SERVICE=ingest -t speakerline-ingest .
#
# Default command: the push HTTP function `speakerline.push:http_entrypoint` for $SERVICE on $PORT (Cloud Run
# behind a Pub/Sub push subscription). `python -m speakerline.worker $SERVICE` runs the same service as a
# pull worker instead (docker-compose does that against the emulators).
#
# The image installs the runtime library and the service's own extras only (EXTRAS, default: the service),
# never the tooling's (the CLI, the local stack); compose's one-shot provisioner builds it with EXTRAS=tools.
#
# SERVICE=diarization builds the CPU diarization worker (the embedded engine: docker-compose, and the cloud's
# `diarization_engine = "embedded"`); `--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu`
# takes torch's CPU build (2.9.1+cpu satisfies the pin) instead of PyPI's CUDA one (cloudbuild.yaml does). The
# GPU worker uses diarization.Dockerfile (CUDA). No other image installs torch (tests/infra/test_images.py).
#
# SERVICE=api EXTRAS=api builds the HTTP API; its command is `python -m speakerline.worker api` (its app under
# uvicorn: the topology's entrypoint is http), set by Cloud Run (infra/terraform/run.tf) and docker-compose, not
# the default serve-push.

#checkov:skip=CKV_DOCKER_7:every FROM is an ARG below, pinned by tag and sha256 digest (checkov does not expand ARGs)
# Pinned by digest (tags move); refresh with `docker buildx imagetools inspect python:3.11-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG EXTRAS=${SERVICE}
# Where torch comes from, for SERVICE=diarization only: empty = PyPI (a CUDA build).
ARG TORCH_INDEX_URL=""
RUN test -n "${SERVICE}" || { echo "build-arg SERVICE is required (ingest, diarization, postprocess, notification, projector, api)" >&2; exit 1; }
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
COPY services ./services
# The import check fails the build early: a worker service's `wiring`, or `app` for the api (it has no wiring).
# DL3013 (pin pip packages) is ignored for the project itself: every dependency is pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install pip==26.3 \
 && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple} ".[${EXTRAS}]" \
 && python -c "import importlib, importlib.util, sys; name = sys.argv[1]; importlib.import_module(name + ('.wiring' if importlib.util.find_spec(name + '.wiring') else '.app'))" "${SERVICE}"

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
COPY infra/docker/serve-push.sh /usr/local/bin/serve-push
# the entry point of a pull worker on Cloud Run (run.tf's CPU-only diarization worker)
COPY infra/docker/pull-worker.sh /usr/local/bin/pull-worker
RUN chmod 0755 /usr/local/bin/serve-push /usr/local/bin/pull-worker \
 && serve-push --print-source >/dev/null
USER 10001:10001
WORKDIR /home/speakerline
EXPOSE 8080
# Cloud Run ignores Docker health checks and probes $PORT itself (run.tf); docker-compose defines its own.
HEALTHCHECK NONE
CMD ["serve-push"]
