"""gunicorn logger whose access log is one JSON object per request.

The query string is never logged (it can carry OAuth codes and tokens), nor any
cookie or authorization header.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gunicorn.glogging import Logger


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own messages (worker boot, timeouts) in the same JSON shape as the app's.
        from .logs import JsonFormatter  # imports flask: only in the server

        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        headers = {k.lower(): v for k, v in resp.headers}
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "level": "info",
            "logger": "gunicorn.access",
            "remote": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(str(resp.status).split(" ", 1)[0]),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "request_id": headers.get("x-request-id"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            self.access_log.info(json.dumps(entry, separators=(",", ":")))
        except Exception:
            self.exception("failed to write the access log")
