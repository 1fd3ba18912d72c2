"""The log lines' form: which process wrote them (pid and role) and how (text or one JSON object a line).

Several processes of one pool may write one file (``server.workers`` > 1: a supervisor and its workers), so every
line names its process's pid and role: ``supervisor``, ``worker N`` (N from 1; ``worker`` alone for a pool of one
process), or ``leader`` while this process runs the chain loops (its pid says which worker it is). The role lives in
this module (``set_role``, ``set_leading``), set where it changes (the command line, the leader's terms); the
``RoleFilter`` copies it onto every record, so any formatter may show it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

_process_role = "worker"
_leading = False


def set_role(role: str) -> None:
    """This process's role when it does not lead: ``supervisor``, ``worker N`` or ``worker``."""
    global _process_role
    _process_role = role


def set_leading(leading: bool) -> None:
    """Called when this process becomes the leader, and when it stops being it."""
    global _leading
    _leading = leading


def current_role() -> str:
    return "leader" if _leading else _process_role


class RoleFilter(logging.Filter):
    """Adds ``role`` (the process's role at the time of the record) to every record; passes them all. (``pid`` is the
    record's own ``process``.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = current_role()
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(role)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, pid, role, and exception (the traceback
    as text) when the record carries one. A newline in a message is escaped, so a line is always one record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process if record.process is not None else os.getpid(),
            "role": getattr(record, "role", current_role()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(form: str) -> logging.Formatter:
    """The formatter of ``logging.format`` (``text`` or ``json``)."""
    if form == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)
