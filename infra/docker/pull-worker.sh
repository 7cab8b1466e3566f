#!/bin/sh
# Entrypoint of the diarization worker on Cloud Run (the GPU image's ENTRYPOINT; run.tf sets it for the CPU
# image too): runs the given command (default: the pull worker) and, when
# $PORT is set (Cloud Run services always set it), first opens a bare TCP listener on it, because a Cloud Run
# service must listen on $PORT to pass its startup probe even though this worker takes no requests (ingress is
# internal and nothing may invoke it). The worker is exec'd, so it is PID 1's replacement: when it exits (e.g.
# pulling broke), the container exits and Cloud Run starts a fresh one. Vertex AI CustomJobs set no
# $PORT and get no listener.
set -eu
if [ -n "${PORT:-}" ]; then
    python - "$PORT" <<'PY' &
import http.server
import os
import sys
import threading
import time


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def exit_with_worker(parent: int) -> None:
    # Outside a container nothing reaps this listener: leave when the worker (our parent after exec) is gone.
    while os.getppid() == parent:
        time.sleep(2)
    os._exit(0)


threading.Thread(target=exit_with_worker, args=(os.getppid(),), daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Health).serve_forever()
PY
fi
exec "$@"
