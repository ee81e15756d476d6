"""Secrets never reach the screen, the event log or an error message.

A :class:`Masker` is built once per run from every secret of every target
(:func:`collect_secrets`) and applied where text leaves fap: each event the
reporters receive (:class:`MaskingReporter`), each error line. It hides every
spelling a secret can take on the way: raw, shell-quoted once (a command) and
twice (``.env`` text inside a ``printf``), escaped as Python's ``repr`` does,
and each line of a multi-line secret (output arrives line by line).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from fapistrano.errors import ConfigError
from fapistrano.ui import Event, HostResult, Reporter, printable

MASK = "***"
#: Shorter secrets cannot be hidden without garbling every line; configuring one is an error.
MIN_SECRET = 4
# scheme://user:password@host -> scheme://user:***@host, in text that does not come from the settings.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<password>[^/\s@]+)@")
_URL_SCHEME = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://")


def spellings(secret: str) -> set[str]:
    """Every form ``secret`` can take in fap's output, each at least :data:`MIN_SECRET` long."""
    forms = {secret, *words(secret)}
    # shlex.quote turns ' into '"'"': a secret quoted once (a command) or twice (.env text in a
    # printf) no longer contains itself.
    quoted = secret
    for _ in range(2):
        quoted = quoted.replace("'", "'\"'\"'")
        forms.add(quoted)
    # repr() escapes backslashes and control characters, and ' when the text holds both quotes.
    for form in list(forms):
        escaped = "".join(repr(char)[1:-1] for char in form)
        forms.update((escaped, escaped.replace("'", "\\'")))
    # Output is shown line by line: each line of a multi-line secret is a secret of its own.
    for form in list(forms):
        if "\n" in form:
            forms.update(line.strip("\r") for line in form.split("\n"))
    # "user:password" also hides its password alone (curl -u prints neither).
    if ":" in secret:
        forms.add(secret.split(":", 1)[1])
    return {form for form in forms if len(form) >= MIN_SECRET}


def words(secret: str) -> set[str]:
    """Each word of a multi-word secret (``-H 'Authorization: Bearer TOKEN'``): one may be printed alone.

    Words as a shell splits them (quotes removed), and as whitespace does.
    """
    if not any(char.isspace() for char in secret.strip()):
        return set()
    found = set(secret.split())
    try:
        for token in shlex.split(secret):
            found.add(token)
            found.update(token.split())
    except ValueError:  # unbalanced quotes: the whitespace split stands
        pass
    return found


class Masker:
    """Replaces known secret values, in every spelling, and passwords inside URLs, with ``***``.

    What it returns is printable as well (:func:`fapistrano.ui.printable`): it
    is applied wherever text leaves fap, and a terminal escape sequence from a
    host must not reach the operator's terminal either.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in dict.fromkeys(str(secret) for secret in secrets):  # every host of a fleet repeats them
            values |= spellings(secret)
        self._values = sorted(values, key=len, reverse=True)
        # One search says whether a line holds any secret at all: most lines hold none.
        self._any = re.compile("|".join(re.escape(value) for value in self._values)) if self._values else None

    def __call__(self, text: str) -> str:
        return printable(self.hide(text))

    def hide(self, text: str) -> str:
        """``text`` with every secret and URL password hidden, its control characters left for the caller to show."""
        if not text:
            return text
        if self._any is not None and self._any.search(text):
            text = self._hide(text)
        if "://" in text:
            text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        return text

    def hide_in(self, value: Any) -> Any:
        """JSON data with :meth:`hide` applied to every string in it, keys too.

        ``--json`` output is masked value by value, before it is dumped: JSON
        spells a quote, a backslash or a letter beyond ASCII otherwise than the
        secret is written, and the dumped text would no longer hold it.
        """
        if isinstance(value, str):
            return self.hide(value)
        if isinstance(value, Mapping):
            return {self.hide_in(name): self.hide_in(item) for name, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.hide_in(item) for item in value]
        return value

    def _hide(self, text: str) -> str:
        """``text`` with every stretch any secret covers replaced by one ``***``.

        Overlapping secrets (``AAAA1111`` and ``1111BBBB`` in ``AAAA1111BBBB``)
        hide the union of their matches, not the first one's only.
        """
        spans = []
        for value in self._values:
            start = text.find(value)
            while start >= 0:
                spans.append((start, start + len(value)))
                start = text.find(value, start + 1)
        spans.sort()
        pieces = []
        shown_to = 0
        end = -1
        for start, stop in spans:
            if start > end:  # a new stretch; adjoining ones (start == end) join as well
                if end >= 0:
                    pieces.append(MASK)
                pieces.append(text[shown_to:start])
            end = max(end, stop)
            shown_to = end
        pieces.append(MASK)
        pieces.append(text[shown_to:])
        return "".join(pieces)


# ---------------------------------------------------------------------------
# Which values are secrets
# ---------------------------------------------------------------------------


def _parts(value: Any, label: str) -> Iterator[tuple[str, str]]:
    """``(label, text)`` for each secret a value holds: itself, each list item, each mapping value."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _parts(item, f"{label}: {key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _parts(item, f"{label}[{index}]")
    elif str(value):
        yield label, str(value)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


def url_passwords(text: str) -> list[str]:
    """The passwords of ``scheme://user:password@host`` URLs in a setting's text.

    The password runs from the first ``:`` after the user to the last ``@`` of the line, so that
    one holding quotes, ``@``, ``/`` or spaces (which curl and git may accept or reject) is still
    hidden whole wherever it is printed.
    """
    found = []
    for match in _URL_SCHEME.finditer(text):
        line = text[match.end():].split("\n", 1)[0]
        userinfo = line[:line.rfind("@")] if "@" in line else ""
        user, colon, password = userinfo.partition(":")
        if colon and password and "/" not in user and not user.isspace():
            found.append(password)
            # A client that splits at the first @ shows the rest of the password as the host or user.
            found.extend(password.split("@")[1:])
    return found


def collect_secrets(config: Mapping[str, Any], names: Iterable[str], where: Mapping[str, str] | None = None) -> list[str]:
    """Every secret of one target: the values of the settings ``names``, and URL passwords anywhere.

    A secret shorter than :data:`MIN_SECRET` characters is a :class:`ConfigError` naming the
    setting (never its value): it cannot be masked without garbling every line of output.
    ``where`` gives the error prefix (``deploy.yml:12: ``) of a setting.
    """
    secrets: list[str] = []
    for name in dict.fromkeys(names):
        if name not in config:
            continue
        for label, text in _parts(config[name], name):
            if len(text) < MIN_SECRET:
                raise ConfigError(f"{(where or {}).get(name, '')}{label}: a masked value must be at least {MIN_SECRET} "
                                  "characters long (a shorter one cannot be hidden in output); use a longer secret "
                                  "or stop masking this setting")
            secrets.append(text)
            # A list item may be a shell line split into arguments (curl_options, pip options).
            if isinstance(config[name], (list, tuple)) and isinstance(text, str) and " " in text.strip():
                try:
                    secrets.extend(token for token in shlex.split(text) if len(token) >= MIN_SECRET)
                except ValueError:
                    pass
    for value in config.values():
        for text in _texts(value):
            secrets.extend(url_passwords(text))
    return secrets


class MaskingReporter(Reporter):
    """A reporter that masks every event and summary before passing them on: the output boundary."""

    def __init__(self, reporter: Reporter, masker: Masker) -> None:
        self.reporter = reporter
        self.masker = masker

    def output_wanted(self) -> str:
        return self.reporter.output_wanted()

    def handle(self, event: Event) -> None:
        data = {key: self.masker(value) if isinstance(value, str) else value for key, value in event.data.items()}
        self.reporter.handle(replace(event, message=self.masker(event.message), data=data))

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        masked = [replace(result, error=self.masker(result.error)) if result.error else result for result in results]
        self.reporter.summary(self.masker(title), masked, ok)

    def close(self) -> None:
        self.reporter.close()
