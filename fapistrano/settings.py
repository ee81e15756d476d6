"""``Setting``: how a plugin declares one setting — name, default, doc, type, secret — in one place.

A plugin returns its settings from ``fap_settings()``::

    from fapistrano import Setting, hookimpl

    @hookimpl
    def fap_settings():
        return [
            Setting("hello_greeting", "hello from %(host)s", "What HELLO says."),
            Setting("hello_retries", None, "Retries; unset: none.", type=int | None),
            Setting("hello_token", "", "API token.", secret=True),
        ]

The type is read from the default when the default can say it (``5`` is an
int, ``[]`` a list of strings); say it with ``type=`` when it cannot (``None``
for an int that may be unset). ``fapistrano.config`` checks every value from
deploy.yml and the command line against it.
"""

from __future__ import annotations

import difflib
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fapistrano.errors import ConfigError, FapError

#: The kinds of value a setting can hold, and how an error message names them.
KIND_WORDS = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "list": "a list",
    "dict": "a mapping",
    "str": "a string",
}

_SCALAR_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
_SUPPORTED = "str, int, float, bool, list[str], dict[str, str], or one of them | None"


def kind_of_default(default: Any) -> str:
    """The kind a setting accepts when only its default says it: bool, int, float, list, dict or str."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, (list, tuple)):
        return "list"
    if isinstance(default, Mapping):
        return "dict"
    return "str"


def kind_of_type(declared: Any) -> tuple[str, bool]:
    """``(kind, accepts None)`` of a type written in a :class:`Setting` (``int | None``, ``list[str]``…).

    Raises :class:`ValueError` naming the supported types for anything else.
    """
    origin = typing.get_origin(declared)
    if origin is typing.Union or origin is types.UnionType:
        others = [arg for arg in typing.get_args(declared) if arg is not type(None)]
        if len(others) != 1 or len(others) == len(typing.get_args(declared)):
            raise ValueError(f"type {_type_text(declared)} is not supported; use {_SUPPORTED}")
        kind, _ = kind_of_type(others[0])
        return kind, True
    if declared in _SCALAR_KINDS:
        return _SCALAR_KINDS[declared], False
    if declared is list or (origin is list and typing.get_args(declared) == (str,)):
        return "list", False
    if declared is dict or (origin is dict and typing.get_args(declared) == (str, str)):
        return "dict", False
    raise ValueError(f"type {_type_text(declared)} is not supported; use {_SUPPORTED}")


def _type_text(declared: Any) -> str:
    # A plain class by its name; list[int] is an instance of type too before Python 3.11.
    if isinstance(declared, type) and typing.get_origin(declared) is None:
        return declared.__name__
    return str(declared).replace("typing.", "")


def fits(kind: str, value: Any) -> bool:
    """Whether a Python value (a default) is of ``kind``."""
    return {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "list": isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
        "dict": isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
        "str": isinstance(value, str),
    }[kind]


@dataclass(frozen=True)
class Setting:
    """One setting a plugin declares in ``fap_settings()``.

    :param name: the key in deploy.yml and ``ctx.config``; ``--name-with-dashes``
        on the command line. Prefix it with the plugin's name (``git_``).
    :param default: the value when deploy.yml and the command line say
        nothing; may reference other settings as ``%(name)s``.
    :param doc: one sentence for ``fap config``, ``fap plugins``, ``fap init``
        and the configuration reference.
    :param type: what a value must be, when the default cannot say it:
        ``int | None`` (an integer, or unset), ``list[str]``, ``dict[str, str]``,
        ``str``, ``int``, ``float``, ``bool``. Without it, the default's type
        (``None`` means an optional string).
    :param secret: the value is masked (``***``) in everything fap prints,
        logs and reports.
    :param choices: the only values a string setting accepts.
    :param shell: the value is shell text (a command fap or the plugin runs):
        a ``%(name)s`` in it goes in shell-quoted, as one word, and one inside
        quotes is refused, so a value never adds a command.
    :param check: a function fap calls with the value each host gets (its
        type checked, its ``%(name)s`` filled in; an optional setting's
        ``None``, unset, is not checked), for what a type cannot say: ``at least 1``, ``an
        absolute path``. It raises :class:`ValueError` saying what is wrong
        (``must be at least 1, got 0``); fap refuses the run before any host
        is touched, in one line naming where the value was set and the
        setting (``deploy.yml:7: keep_releases: must be at least 1, got 0``).
        Whatever it returns is ignored.
    """

    name: str
    default: Any = None
    doc: str = ""
    type: Any = None
    secret: bool = False
    choices: Sequence[str] = ()
    shell: bool = False
    check: Callable[[Any], object] | None = field(default=None, compare=False, repr=False)
    #: ``file:line`` of the ``Setting(...)`` call, for errors about the declaration.
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.where:
            caller = sys._getframe(2)  # 0: here, 1: the dataclass __init__, 2: the plugin's code
            object.__setattr__(self, "where", f"{caller.f_code.co_filename}:{caller.f_lineno}")
        object.__setattr__(self, "choices", tuple(self.choices))
        problem = self._problem()
        if problem:
            raise ConfigError(f"{self.where}: setting {self.name!r}: {problem}")

    @property
    def kind(self) -> str:
        """What a value must be: ``bool``, ``int``, ``float``, ``list``, ``dict`` or ``str``."""
        return kind_of_type(self.type)[0] if self.type is not None else kind_of_default(self.default)

    @property
    def optional(self) -> bool:
        """Whether ``null`` (unset) is a value this setting accepts."""
        if self.type is not None:
            return kind_of_type(self.type)[1]
        return self.default is None

    def _problem(self) -> str:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            return "the name must be a Python identifier (letters, digits, _)"
        if not isinstance(self.doc, str):
            return "doc must be a string"
        if self.type is not None:
            try:
                kind, optional = kind_of_type(self.type)
            except ValueError as error:
                return str(error)
            if self.default is None and not optional and kind != "str":
                return f"the default is None but the type is {_type_text(self.type)}; write type={_type_text(self.type)} | None"
            if self.default is not None and not fits(kind, self.default):
                return f"the default {self.default!r} is not {KIND_WORDS[kind]} (type {_type_text(self.type)})"
        if self.check is not None and not callable(self.check):
            return f"check must be a function of the value, got {self.check!r}"
        if self.choices:
            if self.kind != "str" or not all(isinstance(c, str) for c in self.choices):
                return "choices are strings, for a setting of type str"
            if self.default is not None and self.default not in self.choices:
                return f"the default {self.default!r} is not one of the choices {list(self.choices)}"
        return ""


class UndeclaredSetting(FapError, KeyError):
    """A plugin read a setting that nothing declares (a :class:`KeyError` too, for code that catches one)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Settings(Mapping[str, Any]):
    """Resolved settings, read-only (``ctx.config``, ``run.config``): a missing name says that no plugin declares it.

    A :class:`KeyError` would name only the key; :class:`UndeclaredSetting`
    (a ``KeyError`` and a :class:`~fapistrano.FapError`) says what to do:
    declare it with ``fap_settings``, or fix the name (the closest declared
    one is suggested).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), [str(k) for k in self._values], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UndeclaredSetting(f"setting {name!r} is not declared by any plugin's fap_settings{hint}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Settings({dict(self._values)!r})"


def from_legacy(plugin: str, defaults: Any, docs: Mapping[str, str] | None, secrets: Sequence[str] | None,
                where: str = "") -> list[Setting]:
    """A 1.0 plugin's ``fap_defaults`` (with its ``fap_setting_docs`` and ``fap_secret_settings``) as :class:`Setting` objects.

    The one place the 1.0 form becomes the new one: a plugin written for 1.0
    declares the same settings, checked the same way, as one returning
    ``Setting`` objects from ``fap_settings``.
    """
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"plugin {plugin}: fap_defaults must return a mapping, got {type(defaults).__name__}")
    for name in defaults:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"plugin {plugin}: fap_defaults: {name!r} is not a valid setting name")
    docs, secrets = docs or {}, secrets or []
    return [
        Setting(name, default, str(docs.get(name, "") or ""), secret=name in secrets, where=where or f"plugin {plugin}")
        for name, default in defaults.items()
    ]


__all__ = ["KIND_WORDS", "Setting", "Settings", "UndeclaredSetting", "fits", "from_legacy", "kind_of_default", "kind_of_type"]
