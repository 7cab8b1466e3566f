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
# SERVICE=diarization builds a CPU-only diarization image for the local stack; the cloud worker uses
# diarization.Dockerfile (CUDA).
#
# SERVICE=api EXTRAS=api builds the HTTP API; its command is uvicorn (`uvicorn api.app:create_app --factory`),
# set by Cloud Run (infra/terraform/run.tf) and docker-compose, not the default serve-push.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG EXTRAS=${SERVICE}
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
RUN pip install --upgrade pip \
 && pip install ".[${EXTRAS}]" \
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
RUN chmod 0755 /usr/local/bin/serve-push \
 && serve-push --print-source >/dev/null
USER 10001:10001
WORKDIR /home/speakerline
EXPOSE 8080
CMD ["serve-push"]
