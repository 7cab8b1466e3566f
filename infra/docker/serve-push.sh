#!/bin/sh
# Serves the push HTTP function of the service named by $SERVICE (speakerline.push:http_entrypoint) with the
# functions-framework CLI, behind a Pub/Sub push subscription. --source wants a file path and the module lives
# inside the installed library, so it is located with importlib (without importing it).
# `serve-push --print-source` prints that path (the image build runs it to fail early).
set -eu
: "${SERVICE:?SERVICE is not set}"
source_file="$(python -c 'import importlib.util, sys
spec = importlib.util.find_spec("speakerline.push")
if spec is None or spec.origin is None:
    sys.exit("speakerline.push not found")
print(spec.origin)')"
if [ "${1:-}" = "--print-source" ]; then
    echo "$source_file"
    exit 0
fi
exec functions-framework --target http_entrypoint --source "$source_file" --signature-type http --port "${PORT:-8080}"
