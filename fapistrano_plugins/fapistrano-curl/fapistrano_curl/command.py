"""Turn the ``curl_*`` settings into the commands the plugin runs, and check them.

Pure functions, no host: they build shell text with every configured value
quoted, and the curl configuration fed to ``curl --config -`` on stdin — the
only place credentials ever go, so they are neither in the process list of
any machine nor in a command fap prints.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

#: Name the download gets when the URL's path has no usable last part.
FALLBACK_OUTPUT = "artifact"

# Options that make curl print request headers (``Authorization: Basic <base64>``),
# which no masking of the plain password can catch.
_HEADER_PRINTING = ("--verbose", "--trace", "--trace-ascii")
_SHORT_CLUSTER = re.compile(r"-[A-Za-z0-9#:]+\Z")
# Escapes curl understands inside a double-quoted config value.
_CONFIG_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries ``user:password@`` (or ``user@``) before its host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return "@" in (parts.netloc or "")


def output_name(url: str) -> str:
    """The file name a download of ``url`` gets by default: the last part of its path.

    ``https://ci.example.org/builds/app-1.4.tar.gz?token=x`` -> ``app-1.4.tar.gz``;
    a URL whose path ends in ``/`` (or has none) -> ``artifact``.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    name = unquote(posixpath.basename(path))
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return FALLBACK_OUTPUT
    return name


def output_path(config: Mapping[str, Any], release_path: str) -> str:
    """Where the download is written on the host: ``curl_output`` relative to the release."""
    output = (config.get("curl_output") or "").strip() or output_name(config.get("curl_url") or "")
    return posixpath.normpath(posixpath.join(release_path, output))


def split_options(options: Any) -> list[str]:
    """``curl_options`` as curl's argv words.

    Each item (a string alone is one item) is split the way a shell would, so
    ``--retry 3`` and ``["--retry", "3"]`` mean the same, and a value holding
    spaces is quoted inside its item: ``--header 'X-Build: 42 final'``.
    Raises ``ValueError`` on an unbalanced quote.
    """
    if not options:
        return []
    if isinstance(options, str):
        options = [options]
    words: list[str] = []
    for item in options:
        words.extend(shlex.split(str(item)))
    return words


def prints_headers(words: Sequence[str]) -> str | None:
    """The first option in ``words`` that makes curl print request headers, if any."""
    for word in words:
        if word in _HEADER_PRINTING or word.startswith(("--trace=", "--trace-ascii=")):
            return word
        # "-v", or a cluster of short flags such as "-sSv".
        if not word.startswith("--") and _SHORT_CLUSTER.match(word) and "v" in word[1:]:
            return word
    return None


def passes_user(words: Sequence[str]) -> str | None:
    """The first option in ``words`` that puts credentials on curl's command line, if any."""
    for word in words:
        if word in ("-u", "--user") or word.startswith("--user=") or (word.startswith("-u") and not word.startswith("--")):
            return word
    return None


def problems(config: Mapping[str, Any], flow: str = "release") -> list[str]:
    """Every reason the ``curl_*`` settings cannot work, one line each (empty when fine)."""
    found = []
    url = (config.get("curl_url") or "").strip()
    if not url and flow in ("release", "check"):
        found.append("curl_url is not set: set it to the artifact's URL in deploy.yml (or pass --curl-url URL)")
    user = config.get("curl_user") or ""
    if user and ":" not in user:
        # Without a colon curl asks for the password on a terminal, which a deploy has not got.
        found.append("curl_user: expected user:password (curl would stop to ask for the password)")
    if config.get("curl_extract_tar") and config.get("curl_extract_tgz"):
        found.append("curl_extract_tar and curl_extract_tgz are both true: set the one that matches the archive")
    try:
        words = split_options(config.get("curl_options"))
    except ValueError as error:
        found.append(f"curl_options: cannot split into arguments: {error}")
        words = []
    if passes_user(words):
        found.append(f"curl_options: {passes_user(words)} would show the credentials in the process list: use curl_user")
    if (user or url_has_credentials(url)) and prints_headers(words):
        found.append(f"curl_options: {prints_headers(words)} would print the credentials (as an Authorization header): remove it")
    return found


def config_line(name: str, value: str) -> str:
    """One line of a curl config file: ``name = "value"`` with value escaped for curl."""
    if "\0" in value:
        raise ValueError(f"{name} contains a NUL character")
    escaped = "".join(_CONFIG_ESCAPES.get(char, char) for char in value)
    return f'{name} = "{escaped}"\n'


def options_are_secret(config: Mapping[str, Any]) -> bool:
    """Whether ``curl_options`` is masked: then it goes to curl on stdin, with the URL, not on its command line."""
    return "curl_options" in (config.get("mask") or ())


def option_lines(words: Sequence[str]) -> str:
    """``curl_options`` words as lines of a curl config file: each option with its value, quoted.

    A word starting with ``-`` starts an option; a word that does not is the
    value of the option before it (curl reads one option per line).
    """
    lines: list[list[str]] = []
    for word in words:
        if word.startswith("-") and word != "-" or not lines or len(lines[-1]) == 2:
            lines.append([word])
        else:
            lines[-1].append(word)
    text = ""
    for line in lines:
        if len(line) == 1:
            if "\n" in line[0] or "\0" in line[0]:
                raise ValueError("curl_options holds a control character")
            text += f"{line[0]}\n"
        else:
            text += config_line(line[0], line[1]).replace(" = ", " ", 1)
    return text


def curl_config(config: Mapping[str, Any]) -> str:
    """The text fed to ``curl --config -``: the URL, ``curl_user`` when set, and a masked ``curl_options``."""
    text = config_line("url", (config.get("curl_url") or "").strip())
    if config.get("curl_user"):
        text += config_line("user", str(config["curl_user"]))
    if options_are_secret(config):
        text += option_lines(split_options(config.get("curl_options")))
    return text


def download_command(config: Mapping[str, Any], output: str, *, probe: bool = False) -> str:
    """The shell line that downloads the artifact to ``output`` (every word quoted).

    ``--fail`` turns an HTTP error into a non-zero exit instead of saving the
    error page; ``--location`` follows redirects (curl sends credentials only
    to the first host); ``--globoff`` keeps ``[]{}`` in URLs literal. The URL
    and credentials (and a masked ``curl_options``) are read from stdin
    (``--config -``): never in any process list. With ``probe`` it
    asks for the first byte only and discards it (``fap check``).
    """
    argv = ["curl", "--fail", "--location", "--globoff", "--silent", "--show-error"]
    if probe:
        argv += ["--range", "0-0", "--output", "/dev/null"]
    else:
        argv += ["--create-dirs", "--output", output, "--write-out", "%{size_download}"]
    if not options_are_secret(config):
        argv += split_options(config.get("curl_options"))
    argv += ["--config", "-"]
    return " ".join(shlex.quote(word) for word in argv)


def extract_command(config: Mapping[str, Any], archive: str, release_path: str) -> str | None:
    """The shell line that unpacks ``archive`` into the release and removes it; ``None`` if not asked."""
    if config.get("curl_extract_tgz"):
        flags = "-xzf"
    elif config.get("curl_extract_tar"):
        flags = "-xf"
    else:
        return None
    return (f"tar {flags} {shlex.quote(archive)} -C {shlex.quote(release_path)}"
            f" && rm -f -- {shlex.quote(archive)}")


def postinstall_command(script: str) -> str:
    """``curl_postinstall_script`` run by ``sh`` with its stderr merged into stdout (one ordered stream)."""
    return f"sh -c {shlex.quote(script)} 2>&1"


def last_lines(text: str, count: int = 5) -> str:
    """The last ``count`` non-blank lines of ``text`` joined with `` | `` (for a one-line error)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])
