"""Logging: readable lines by default, JSON lines with `WAFILE_LOG_FORMAT=json`.

Every record carries the request id of the request it belongs to (a context variable
set by the API middleware), and every record passes through a filter that scrubs
anything shaped like an API key or a bearer token before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from wafile.config import LogFormat
from wafile.core.api_keys import redact_keys

__all__ = ["request_id_var", "scrub", "setup_logging"]

request_id_var: ContextVar[str | None] = ContextVar("wafile_request_id", default=None)

_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Attributes every record has, and uvicorn's duplicate coloured message: not extras.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
    "taskName",
}


def scrub(text: str) -> str:
    return _BEARER_RE.sub(lambda m: f"{m.group(1)} ***", redact_keys(text))


class ContextFilter(logging.Filter):
    """Adds `request_id` and scrubs secrets from the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        clean = scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        rid = getattr(record, "request_id", None)
        line = f"{stamp}Z {record.levelname:<7} {record.name}"
        if rid:
            line += f" [{rid}]"
        line += f" {record.getMessage()}"
        extra = _extras(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            doc["request_id"] = rid
        doc.update(_extras(record))
        if record.exc_info:
            doc["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: (scrub(v) if isinstance(v, str) else v)
        for k, v in vars(record).items()
        if k not in _RESERVED and not k.startswith("_")
    }


def setup_logging(level: str, fmt: LogFormat) -> None:
    """Configure the root logger once; uvicorn's loggers propagate into it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # Our middleware writes the access log (with request id, without query strings).
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("sqlalchemy", "alembic", "aiosqlite", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
