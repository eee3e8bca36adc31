"""The one redaction every user-facing message passes through (CLI errors, job errors, logged text):
URL credentials (`scheme://user:PW@host`, also without a scheme: `user:PW@host:5432/db`), token and
password fields (`token=…`, `"password": "…"`, `Authorization: Bearer …`, presigned-URL signatures),
and the value of any secret this process holds in its environment (RAY_AUTH_TOKEN,
MLFLOW_TRACKING_PASSWORD, AWS_SECRET_ACCESS_KEY, …), wherever it appears. Standard library only:
the CLI imports it before anything heavy."""
from __future__ import annotations

import os
import re

MASK = "***"

# user:password@ in a URL, with or without a scheme; the user name stays (it says whose login failed)
_URL_USERINFO = re.compile(r"(?P<pre>(?:\b[A-Za-z][\w+.-]*://)?[^\s:/@'\"<>]+):(?P<pw>[^\s@/'\"<>]+)@(?=[\w\[.-])")
# key=value / key: value / "key": "value" pairs whose key names a secret
_SECRET_KEYS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|credential|signature" \
               r"|x-amz-signature|x-amz-credential|x-amz-security-token|sig)"
_KEY_VALUE = re.compile(r"(?P<key>(?<![\w-])[\w-]*" + _SECRET_KEYS + r"[\w-]*(?:['\"]?\s*[:=]\s*['\"]?))"
                        r"(?P<value>[^\s'\"&,;)}\]]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\b(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE)
# environment variables whose values are secrets
_SECRET_ENV = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|_KEY$|CREDENTIAL", re.IGNORECASE)
_NOT_SECRET_ENV = re.compile(r"(_PATH|_FILE|_DIR|_MODE|_USERNAME|_USER)$", re.IGNORECASE)  # where a secret is, not it
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def _environment() -> list[tuple[str, str]]:
    """os.environ's items; another thread (MLflow's telemetry) may unset a variable while they are read."""
    for _ in range(10):
        try:
            return list(os.environ.items())
        except (KeyError, RuntimeError):
            continue
    return []


def _env_secrets() -> list[str]:
    values = {v for k, v in _environment()
              if _SECRET_ENV.search(k) and not _NOT_SECRET_ENV.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)  # longest first: one secret may contain another


def redact(text: object) -> str:
    """`text` with every credential it holds replaced by ***."""
    out = str(text)
    for secret in _env_secrets():
        out = out.replace(secret, MASK)
    out = _URL_USERINFO.sub(lambda m: m.group("pre") + ":" + MASK + "@", out)
    out = _BEARER.sub(lambda m: m.group("key") + MASK, out)
    return _KEY_VALUE.sub(lambda m: m.group("key") + (m.group("value") if m.group("value") == MASK else MASK), out)


def redact_url(url: str) -> str:
    """A URL (or connection string) as it may be shown: its password masked."""
    return redact(url)


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first line of an error's text (or its type's name), redacted and at most `limit` characters."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else (type(exc).__name__ if isinstance(exc, BaseException) else "")
    first = redact(first)
    return first if len(first) <= limit else first[: limit - 1] + "…"


class UserError(Exception):
    """A problem the user can fix (a bad file, value or address, a service that cannot be reached):
    the CLI shows its message as one redacted line and exits with 2, never a traceback."""
