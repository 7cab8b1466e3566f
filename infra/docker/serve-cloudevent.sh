#!/bin/sh
# Serves speakerline_${SERVICE}.main:entrypoint with the functions-framework CLI. --source wants a file path,
# and the module lives inside the installed package, so it is located with importlib (without importing it).
# `serve-cloudevent --print-source` prints that path (the image build runs it to fail early).
set -eu
: "${SERVICE:?SERVICE is not set}"
module="speakerline_${SERVICE}.main"
source_file="$(python -c 'import importlib.util, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None or spec.origin is None:
    sys.exit(f"{sys.argv[1]} not found")
print(spec.origin)' "$module")"
if [ "${1:-}" = "--print-source" ]; then
    echo "$source_file"
    exit 0
fi
exec functions-framework --target "${FUNCTION_TARGET:-entrypoint}" --source "$source_file" --signature-type "${FUNCTION_SIGNATURE_TYPE:-cloudevent}" --port "${PORT:-8080}"
