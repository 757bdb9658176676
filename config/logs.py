"""Logs that client input cannot forge, and one quiet line per client error.

A request path, a header or a Host can carry line breaks and terminal escapes (a decoded
`%0a` in the path, a NEL byte in the User-Agent); written raw, they start a line that
looks like another request or record, or drive the terminal of whoever reads the log.
Every character that can do either is written as a backslash escape instead, so the
reader sees what the client sent:

- `EscapingFormatter` (LOGGING, and gunicorn's error log) escapes each record's line and
  keeps a traceback on continuation lines that cannot be mistaken for records;
- `GunicornLogger` (`logger_class` in config/gunicorn.py) escapes every access-log atom,
  as Apache does, and puts `EscapingFormatter` on gunicorn's own handlers;
- `ClientErrorFilter` makes a client's error (a 4xx, including Django's
  SuspiciousOperations such as DisallowedHost) one WARNING line without a traceback: it is
  the client's mistake, not the server's, and a scanner must not fill the log with stacks.
"""

import logging
import re

from gunicorn.glogging import Logger, SafeAtoms

# Controls (C0, DEL, C1), line and paragraph separators, and every format character
# (Unicode category Cf: bidi controls, zero-width spaces and joiners, the BOM, the soft
# hyphen...), which could reorder or hide text in a terminal.
_UNSAFE = re.compile(
    # Unicode 14.0.0's format characters (category Cf), as ranges.
    "[\x00-\x1f\x7f-\x9f\u2028\u2029"
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Traceback lines follow their record under this prefix: no exception text can start a line
# that reads as a record of its own.
CONTINUATION = "  | "


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """Return `text` with every control, line-separator and format character as a backslash escape."""
    return _UNSAFE.sub(_escape, text)


class EscapingFormatter(logging.Formatter):
    """A `logging.Formatter` whose output is one line per record, plus escaped traceback lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = escape_controls(self.formatMessage(record))
        # Cached unescaped, as logging.Formatter does, for any other handler of the record.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for details in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if details:
                text += "".join(f"\n{CONTINUATION}{escape_controls(line)}" for line in details.split("\n"))
        return text


class ClientErrorFilter(logging.Filter):
    """Turn the record of a 4xx response into one WARNING line: no ERROR level, no traceback.

    Django logs each error response once with its `status_code`: 4xx on `django.request`
    at WARNING, but SuspiciousOperations (DisallowedHost, TooManyFieldsSent,
    RequestDataTooBig, ...) on `django.security.*` at ERROR with the traceback of the
    exception, which says nothing about the server. 5xx records are left as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 500:
            return True
        record.exc_info = record.exc_text = record.stack_info = None
        if record.levelno <= logging.WARNING:
            return True
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        # The record passed its logger's level as an ERROR; as a WARNING it must pass it too.
        return logging.getLogger(record.name).isEnabledFor(logging.WARNING)


class EscapedAtoms(SafeAtoms):
    """gunicorn's access-log atoms, escaped as Apache escapes them: backslash, quote, controls.

    Escaped when the format reads them: it uses a handful of the dozens of atoms (every
    header and environ variable) gunicorn builds per request.
    """

    def __init__(self, atoms: dict):
        # Not SafeAtoms.__init__: it escapes quotes up front, before the backslashes.
        dict.__init__(self, atoms)

    def __getitem__(self, key: str):
        value = super().__getitem__(key)
        if not isinstance(value, str):
            return value
        # Backslashes first, so that an escape the client typed cannot pass for one of ours.
        return escape_controls(value.replace("\\", "\\\\").replace('"', '\\"'))


def _path_text(path: str) -> str:
    # WSGI hands the path over as bytes decoded as latin-1 (PEP 3333); show the UTF-8 text a
    # client means (as Django's request.path does), or the bytes as they came.
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path


class GunicornLogger(Logger):
    """gunicorn's logger with escaped access-log atoms and escaping formatters on its handlers."""

    atoms_wrapper_class = EscapedAtoms

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        if isinstance(atoms.get("U"), str):
            atoms["U"] = _path_text(atoms["U"])
        return atoms

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False) and handler.formatter is not None:
                    formatter = handler.formatter
                    handler.setFormatter(EscapingFormatter(formatter._fmt, formatter.datefmt))
