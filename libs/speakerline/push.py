"""The push HTTP function of every service (Cloud Run behind a Pub/Sub push subscription):

    functions-framework --source "$(python -c 'import speakerline.push as m; print(m.__file__)')" \
        --target http_entrypoint --signature-type http

serves the service named by SPEAKERLINE_SERVICE (see `speakerline.bootstrap.push_http_handler`).
"""

from __future__ import annotations

import functions_framework

from speakerline import bootstrap

http_entrypoint = functions_framework.http(bootstrap.push_http_handler(eager=True))
