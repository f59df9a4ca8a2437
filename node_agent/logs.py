"""One JSON object per log line: what log collectors on the node parse.

Written here rather than taken from Powertools: that package is a Lambda
toolkit, and the agent image installs only what the agent imports.
"""

from __future__ import annotations

import json
import logging
import time

# attributes every LogRecord has: anything else on a record came in through `extra=`
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": self._timestamp(record.created),
            "service": self.service,
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
            document["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        return json.dumps(document, default=str)

    @staticmethod
    def _timestamp(created: float) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        return f"{seconds}.{int(created % 1 * 1000):03d}Z"
