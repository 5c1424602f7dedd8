"""Uvicorn's logging with query strings and secrets in paths left out of the access log: a console
search by holder code (an ID number) and the link token of an annotated copy (anyone holding it
may download the copy for 10 minutes) must not end up in the logs. Given to uvicorn as a config,
so every worker process applies it."""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

# Paths whose last segment is a bearer secret.
SECRET_PATHS = ("/api/v1/shared/",)


class WithoutQuery(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, path with query, http version, status)
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, logged_path(str(path)), version, status)
        return True


def logged_path(path: str) -> str:
    path = path.split("?", 1)[0]
    for prefix in SECRET_PATHS:
        if path.startswith(prefix):
            return prefix + "…"
    return path


def log_config() -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["without_query"] = {"()": f"{__name__}.WithoutQuery"}
    config["handlers"]["access"]["filters"] = ["without_query"]
    return config
