"""The run's pluggy PluginManager: built-ins, entry points, dotted module names.

A fresh :class:`Plugins` is made for every run; nothing here is global.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from fapistrano import hookspecs
from fapistrano.config import legacy_settings
from fapistrano.errors import ConfigError, FapError
from fapistrano.settings import Setting

ENTRY_POINT_GROUP = "fapistrano"

#: The core's own hookimpls, registered first, like any plugin.
BUILTIN_PLUGINS = (
    "fapistrano.builtin.dirs",
    "fapistrano.builtin.shared",
    "fapistrano.builtin.switch",
    "fapistrano.builtin.cleanup",
    "fapistrano.builtin.checks",
)


class PluginFailure(FapError):
    """A hookimpl raised; carries the plugin's name and the original error."""

    def __init__(self, plugin: str, error: BaseException) -> None:
        self.plugin = plugin
        self.error = error
        if isinstance(error, FapError):
            text = str(error)
        else:
            text = f"{type(error).__name__}: {error}"
        super().__init__(text)


@dataclass(frozen=True)
class InstalledPlugin:
    """A plugin distribution's entry point, as ``fap plugins`` lists it."""

    name: str
    value: str
    distribution: str
    version: str


def installed_plugins() -> list[InstalledPlugin]:
    """Every entry point in the ``fapistrano`` group, sorted by name."""
    found = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry_point, "dist", None)
        found.append(
            InstalledPlugin(
                name=entry_point.name,
                value=entry_point.value,
                distribution=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
            )
        )
    return sorted(found, key=lambda p: p.name)


class Plugins:
    """Owns one PluginManager: specs, built-ins, the plugins deploy.yml names."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("fapistrano")
        self.manager.add_hookspecs(hookspecs)
        for name in BUILTIN_PLUGINS:
            self._register(importlib.import_module(name), name, where="core")
        self.loaded: list[str] = []

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def load(self, names: Iterable[tuple[str, str]], search_path: str | None = None) -> None:
        """Load plugins by entry point name or dotted module path.

        ``names`` pairs each name with where deploy.yml lists it (``file:line``),
        which every error names. A dotted module is also looked up in
        ``search_path`` (deploy.yml's directory), as a project's own
        ``deploy_hooks.py`` beside its deploy.yml would be.
        """
        if search_path and search_path not in sys.path:
            sys.path.append(search_path)
        entry_points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        modules: dict[str, tuple[Any, str]] = {}
        for name, where in names:
            if name in self.loaded or name in modules:
                continue
            if name in entry_points:
                try:
                    module = entry_points[name].load()
                except Exception as error:  # noqa: BLE001 - any import failure is the plugin's
                    raise ConfigError(f"{where}: plugin {name} failed to load: {type(error).__name__}: {error}") from None
            else:
                module = self._import(name, where, entry_points)
            modules[name] = (module, where)
        # pluggy calls the last registered first: register in reverse so that, within a
        # phase, hookimpls run in the order deploy.yml lists their plugins.
        for name, (module, where) in reversed(modules.items()):
            self._register(module, name, where)
        self.loaded.extend(modules)
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            raise ConfigError(f"plugin {error.plugin_name}: {error}") from None

    def _import(self, name: str, where: str, entry_points: dict[str, Any]) -> Any:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name and not name.startswith(error.name):
                raise ConfigError(f"{where}: plugin {name} failed to load: {error}") from None
            close = difflib.get_close_matches(name, list(entry_points), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(entry_points)) or "none"
            raise ConfigError(f"{where}: unknown plugin {name!r}{hint}; installed: {known}") from None
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"{where}: plugin {name} failed to load: {type(error).__name__}: {error}") from None

    def _register(self, module: Any, name: str, where: str) -> None:
        try:
            self.manager.register(module, name=name)
        except ValueError as error:
            raise ConfigError(f"{where}: plugin {name}: {error}") from None
        except pluggy.PluginValidationError as error:
            raise ConfigError(f"{where}: plugin {name}: {error}") from None
        for hook_caller in self.manager.get_hookcallers(module) or []:
            for impl in hook_caller.get_hookimpls():
                if impl.plugin is module and not (impl.wrapper or impl.hookwrapper):
                    impl.function = _naming_failures(impl.function, name)

    # -- calling ----------------------------------------------------------

    def caller(self, hook_name: str, active: Iterable[str]) -> Callable[..., Any]:
        """The hook ``hook_name`` restricted to built-ins and the ``active`` plugins."""
        active = set(active) | set(BUILTIN_PLUGINS)
        inactive = [
            self.manager.get_plugin(name)
            for name in self.loaded
            if name not in active
        ]
        hook = getattr(self.manager.hook, hook_name)
        if not inactive:
            return hook
        return self.manager.subset_hook_caller(hook_name, remove_plugins=inactive)

    def settings(self) -> list[tuple[str, list[Setting]]]:
        """Every loaded plugin's settings, with the plugin's name, in load order.

        A plugin declares them with ``fap_settings``; a plugin written for 1.0
        with ``fap_defaults``, ``fap_setting_docs`` and ``fap_secret_settings``
        gets the same :class:`Setting` objects from those three.
        """
        by_plugin: dict[str, list[Setting]] = {}
        for name, declared, _where in self._per_plugin("fap_settings", []):
            if isinstance(declared, Setting) or not isinstance(declared, Iterable) or \
                    not all(isinstance(s, Setting) for s in declared):
                raise ConfigError(f"plugin {name}: fap_settings must return a list of fapistrano.Setting")
            by_plugin.setdefault(name, []).extend(declared)
        docs = {name: result for name, result, _where in self._per_plugin("fap_setting_docs", {})}
        secrets = {name: result for name, result, _where in self._per_plugin("fap_secret_settings", [])}
        for name, defaults, where in self._per_plugin("fap_defaults", {}):
            by_plugin.setdefault(name, []).extend(
                legacy_settings(name, defaults, docs.get(name) or {}, secrets.get(name) or [], where)
            )
        order = {name: index for index, name in enumerate(self.loaded)}
        return sorted(by_plugin.items(), key=lambda item: order.get(item[0], -1))

    def defaults(self) -> list[tuple[str, dict[str, Any]]]:
        """Each loaded plugin's settings as ``{name: default}``, with the plugin's name."""
        return [(name, {s.name: s.default for s in settings}) for name, settings in self.settings()]

    def docs(self) -> dict[str, str]:
        """Every plugin setting's one-line description."""
        return {s.name: s.doc for _name, settings in self.settings() for s in settings if s.doc}

    def secret_settings(self) -> list[str]:
        """Every setting a plugin declared secret (``Setting(secret=True)`` or ``fap_secret_settings``)."""
        names = [s.name for _name, settings in self.settings() for s in settings if s.secret]
        # A 1.0 plugin may name a secret it does not declare itself (another plugin's, or a user's).
        for _name, listed, _where in self._per_plugin("fap_secret_settings", []):
            names.extend(n for n in listed or [] if n not in names)
        return names

    def _per_plugin(self, hook_name: str, empty: Any) -> list[tuple[str, Any, str]]:
        """``(plugin, result, file:line of its hookimpl)`` of each plugin implementing ``hook_name``."""
        results = []
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            try:
                result = impl.function()
            except PluginFailure as failure:
                if isinstance(failure.error, ConfigError):  # a Setting(...) naming its own file:line
                    raise ConfigError(f"{failure} (plugin {failure.plugin})") from None
                raise ConfigError(f"plugin {failure.plugin}: {hook_name} failed: {failure}") from None
            code = inspect.unwrap(impl.function).__code__
            results.append((impl.plugin_name, result if result is not None else empty, f"{code.co_filename}:{code.co_firstlineno}"))
        return list(reversed(results))

    def implemented_hooks(self, name: str) -> list[str]:
        """The hooks plugin ``name`` implements, for ``fap plugins``."""
        plugin = self.manager.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])


def _naming_failures(function: Callable[..., Any], plugin: str) -> Callable[..., Any]:
    """Wrap a hookimpl so an exception it raises says which plugin raised it."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PluginFailure:
            raise
        except Exception as error:  # noqa: BLE001 - re-raised with the plugin's name
            raise PluginFailure(plugin, error) from error

    return call
