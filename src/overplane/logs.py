"""One log format for everything a server process writes on standard error.

``OVERPLANE_LOG_FORMAT=json`` (the default when standard error is not a terminal: a container
runtime, systemd, a pipe) makes every line one JSON object::

    {"time": "2026-11-30T08:06:29.896Z", "level": "warning", "logger": "py.warnings",
     "pid": 26202, "message": "...", "exception": "Traceback (most recent call last): ..."}

``exception`` is present when the line reports one (its whole traceback, newlines escaped, so
the line stays one line). The access log (``http/access_log.py``) writes the same ``time``,
``level`` and ``logger`` keys first, then its own fields. ``text`` (the default on a terminal)
writes ``time level logger: message`` with the traceback on the lines below, for people.

:func:`configure` routes into it: uvicorn's and granian's loggers (uvicorn is started with no
logging configuration of its own), Python warnings (``logging.captureWarnings``), exceptions
no one caught (``sys.excepthook``, ``threading.excepthook``, the event loop's handler logs
through ``asyncio``'s logger), and every ``logging`` call of ours. Each line is written with
one ``write`` system call, so the ``--workers`` processes sharing a pipe never interleave
their lines (a pipe keeps writes of up to 4 KiB whole; a longer traceback may, rarely, be
split by another process's line).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types

import msgspec

from overplane.rfc3339 import format_ms

FORMATS = ("auto", "json", "text")

#: Loggers whose informational lines an operator wants (start, stop, listening address).
INFO_LOGGERS = ("overplane", "uvicorn", "uvicorn.error", "_granian", "granian")

_encode = msgspec.json.Encoder().encode


def resolve(log_format: str, stream: object = None) -> str:
    """``json`` or ``text``: ``auto`` is ``text`` on a terminal, ``json`` otherwise."""
    if log_format != "auto":
        return log_format
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """``{"time", "level", "logger", "pid", "message", "exception"?}``."""
        line: dict[str, object] = {
            "time": format_ms(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message``, the traceback below it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The same RFC 3339 time as the JSON lines."""
        return format_ms(int(record.created * 1000))


class LineHandler(logging.Handler):
    """Writes each formatted record, newline included, with one ``write`` on standard error's
    file descriptor (or, where standard error has none, as in a test's captured output, to
    the stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = sys.stderr
        try:
            self.fd: int | None = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            self.fd = None

    def emit(self, record: logging.LogRecord) -> None:
        """Format and write ``record``; a closed standard error loses it silently."""
        try:
            line = self.format(record) + "\n"
            if self.fd is None:
                self.stream.write(line)
                self.stream.flush()
                return
            view = memoryview(line.encode("utf-8", "backslashreplace"))
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            pass
        except Exception:  # a record that cannot be formatted must not kill its caller
            self.handleError(record)


def _log_uncaught(
    kind: type[BaseException],
    value: BaseException,
    traceback: types.TracebackType | None,
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("overplane").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:  # pragma: no cover - SystemExit with no value
        return
    logging.getLogger("overplane").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def configure(log_format: str) -> str:
    """Send every log line of this process to standard error in ``log_format`` (``auto``,
    ``json`` or ``text``); the format used. Safe to call again (the handler is replaced)."""
    resolved = resolve(log_format)
    handler = LineHandler()
    handler.setFormatter(JsonFormatter() if resolved == "json" else TextFormatter())
    handler.set_name("overplane")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "overplane":  # configured before: replaced, not doubled
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in INFO_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        # uvicorn's and granian's own configurations add handlers of their own: one route only
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    return resolved
