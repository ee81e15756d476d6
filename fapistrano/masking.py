"""Secrets never reach the screen, the event log or an error message."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@'\"]*):(?P<password>[^/\s@'\"]+)@")


class Masker:
    """Replaces known secret values, and passwords inside URLs, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = set()
        for secret in secrets:
            secret = str(secret)
            if len(secret) >= 3:
                values.add(secret)
                # shlex.quote turns ' into '"'"': a secret quoted once (a command) or twice (.env
                # text in a printf) no longer contains itself, so hide those spellings too.
                quoted = secret
                for _ in range(2):
                    quoted = quoted.replace("'", "'\"'\"'")
                    values.add(quoted)
                # "user:password" also hides its password alone (curl -u prints neither).
                if ":" in secret:
                    password = secret.split(":", 1)[1]
                    if len(password) >= 3:
                        values.add(password)
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        for value in self._values:
            text = text.replace(value, MASK)
        return text

    def merged(self, other: Masker) -> Masker:
        """A masker that hides both sets of secrets."""
        combined = Masker()
        combined._values = sorted(set(self._values) | set(other._values), key=len, reverse=True)
        return combined
