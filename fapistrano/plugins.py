"""The run's pluggy PluginManager: built-ins, entry points, dotted module names.

A fresh :class:`Plugins` is made for every run; nothing here is global.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from types import CodeType, FrameType, TracebackType
from typing import Any

import pluggy

from fapistrano import hookspecs
from fapistrano.config import CORE_PLUGIN
from fapistrano.errors import ConfigError, FapError, PluginFailure
from fapistrano.settings import Setting, from_legacy

ENTRY_POINT_GROUP = "fapistrano"

#: The core's own hookimpls, registered first like any plugin, under the names a
#: failure or ``fap plugins`` shows (``core.switch: …``), by module.
BUILTIN_PLUGINS = {
    # Registered first, so that pluggy calls its trylast hookimpls after every other one (core.shared's too).
    "core.steps": "fapistrano.builtin.run_steps",
    # The core's own settings, declared as any plugin's.
    CORE_PLUGIN: "fapistrano.builtin.core",
    "core.dirs": "fapistrano.builtin.dirs",
    "core.shared": "fapistrano.builtin.shared",
    "core.fingerprint": "fapistrano.builtin.fingerprint",
    "core.switch": "fapistrano.builtin.switch",
    "core.cleanup": "fapistrano.builtin.cleanup",
    "core.checks": "fapistrano.builtin.checks",
    "core.health": "fapistrano.builtin.health",
    "core.migrations": "fapistrano.builtin.migrations",
}


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
        for name, module in BUILTIN_PLUGINS.items():
            self._register(importlib.import_module(module), name, where="core")
        self.loaded: list[str] = []
        # Callers by (hook, active plugins): every host of a target asks for the same one in every phase.
        self._callers: dict[tuple[str, frozenset[str]], Callable[..., Any]] = {}
        self._one_by_one: dict[tuple[str, frozenset[str] | None], list[tuple[str, Callable[..., Any]]]] = {}
        self._attribution: Attribution | None = None

    @property
    def attribution(self) -> Attribution:
        """Which plugin a frame or a traceback belongs to, for the plugins registered now."""
        if self._attribution is None:
            self._attribution = Attribution(self.manager)
        return self._attribution

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
        self._forget_callers()
        for name, (_module, where) in modules.items():
            unknown = self._unknown_hooks(name)
            if unknown:
                raise ConfigError(f"{where}: plugin {name}: {unknown}") from None
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:  # what the walk above missed, named as pluggy says it
            raise ConfigError(f"plugin {self.manager.get_name(error.plugin)}: {error}") from None

    def _unknown_hooks(self, name: str) -> str:
        """``unknown hook NAME (did you mean …?)`` for the first hookimpl of plugin ``name`` no hookspec declares; else ``""``.

        A hookimpl marked ``optionalhook=True`` is left alone: a plugin may
        implement a hook of a newer fap and still load on this one.
        """
        plugin = self.manager.get_plugin(name)
        for caller in sorted(self.manager.get_hookcallers(plugin) or [], key=lambda c: c.name):
            if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
                continue
            return f"unknown hook {caller.name}{_nearest(caller.name, hook_names())}"
        return ""

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

    def _forget_callers(self) -> None:
        """New plugins: the cached callers and the attribution were made without them."""
        self._callers.clear()
        self._one_by_one.clear()
        self._attribution = None

    def _register(self, module: Any, name: str, where: str) -> None:
        try:
            self.manager.register(module, name=name)
        except ValueError as error:
            raise ConfigError(f"{where}: plugin {name}: {error}") from None
        except pluggy.PluginValidationError as error:
            raise ConfigError(f"{where}: plugin {name}: {error}") from None

    # -- calling ----------------------------------------------------------

    def caller(self, hook_name: str, active: Iterable[str]) -> Callable[..., Any]:
        """The hook ``hook_name`` restricted to built-ins and the ``active`` plugins.

        Called with keyword arguments like any pluggy hook; an exception a
        hookimpl raises comes out as a :class:`PluginFailure` naming its plugin.
        Made once per hook and set of plugins (a target's), then reused by
        every host and phase.
        """
        wanted = frozenset(active) | frozenset(BUILTIN_PLUGINS)
        cache_key = (hook_name, wanted)
        found = self._callers.get(cache_key)
        if found is not None:
            return found
        inactive = [self.manager.get_plugin(name) for name in self.loaded if name not in wanted]
        hook = getattr(self.manager.hook, hook_name)
        if inactive:
            hook = self.manager.subset_hook_caller(hook_name, remove_plugins=inactive)
        return self._callers.setdefault(cache_key, _naming(hook, self.attribution))

    def one_by_one(self, hook_name: str, active: Iterable[str] | None = None) -> list[tuple[str, Callable[..., Any]]]:
        """Each plugin's own implementation of ``hook_name`` as ``(plugin, caller)``, in pluggy's call order.

        For the hooks whose answers belong to the plugin that gave them
        (settings, checks): each caller calls that plugin's hookimpl alone,
        through pluggy, and raises :class:`PluginFailure` naming it. Only
        the built-ins and the ``active`` plugins when ``active`` is given.
        """
        hook = getattr(self.manager.hook, hook_name)
        allowed = None if active is None else frozenset(active) | frozenset(BUILTIN_PLUGINS)
        cached = self._one_by_one.get((hook_name, allowed))
        if cached is not None:
            return cached
        everyone = [plugin for _name, plugin in self.manager.list_name_plugin()]
        callers = []
        # pluggy calls the last registered first.
        for impl in reversed(hook.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper or (allowed is not None and impl.plugin_name not in allowed):
                continue
            alone = self.manager.subset_hook_caller(hook_name, remove_plugins=[p for p in everyone if p is not impl.plugin])
            callers.append((impl.plugin_name, _naming(alone, self.attribution, impl.plugin_name)))
        return self._one_by_one.setdefault((hook_name, allowed), callers)

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
                from_legacy(name, defaults, docs.get(name), secrets.get(name), where)
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
        where = {impl.plugin_name: _source(impl.function) for impl in getattr(self.manager.hook, hook_name).get_hookimpls()}
        results = []
        for name, call in self.one_by_one(hook_name):
            try:
                (result,) = call() or [None]
            except PluginFailure as failure:
                if isinstance(failure.error, ConfigError):  # a Setting(...) naming its own file:line
                    raise ConfigError(f"{failure} (plugin {failure.plugin})") from None
                raise ConfigError(f"plugin {failure.plugin}: {hook_name} failed: {failure}") from None
            results.append((name, result if result is not None else empty, where[name]))
        return results

    def implemented_hooks(self, name: str) -> list[str]:
        """The hooks plugin ``name`` implements, for ``fap plugins``."""
        plugin = self.manager.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])


def core_settings() -> list[Setting]:
    """The core's own settings, as the built-in plugin ``core.settings`` declares them (no other plugin loaded)."""
    return dict(Plugins().settings())[CORE_PLUGIN]


def hook_names() -> list[str]:
    """Every hook :mod:`fapistrano.hookspecs` declares."""
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "fapistrano_spec"))


def _nearest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` naming the closest of ``known``, both when two are as close (``publish``: ``published``
    or ``publishing``); ``""`` when none is close."""
    scored = sorted(((difflib.SequenceMatcher(None, name, k).ratio(), k) for k in known), reverse=True)
    close = [k for score, k in scored[:2] if score >= 0.75 and score >= scored[0][0] - 0.05]
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class Attribution:
    """Which plugin is at work: the one way fap names it, from the code objects of every hookimpl.

    Nothing wraps or patches a hookimpl: a frame running one plugin's
    hookimpl (or the function a decorator wraps) names that plugin. A code
    object shared by several plugins (a decorator's wrapper, one function
    registered by two modules) names nobody, and the walk goes on to the
    frame it calls (or is called by). A walk of a few dozen frames costs
    microseconds; a command costs a round trip.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        plugins_of: dict[CodeType, set[str]] = {}
        for plugin in manager.get_plugins():
            for caller in manager.get_hookcallers(plugin) or []:
                for impl in caller.get_hookimpls():
                    if impl.wrapper or impl.hookwrapper:
                        continue
                    for function in (impl.function, inspect.unwrap(impl.function)):
                        code = getattr(function, "__code__", None)
                        if code is not None:
                            plugins_of.setdefault(code, set()).add(impl.plugin_name)
        self._plugin_of = {code: next(iter(names)) for code, names in plugins_of.items() if len(names) == 1}

    def raised_by(self, traceback: TracebackType | None) -> str | None:
        """The plugin whose hookimpl raised the exception of ``traceback``: walked from the hook call inwards."""
        while traceback is not None:
            found = self._plugin_of.get(traceback.tb_frame.f_code)
            if found is not None:
                return found
            traceback = traceback.tb_next
        return None

    def running(self, frame: FrameType | None) -> str | None:
        """The plugin whose hookimpl runs ``frame`` or one of its callers: walked outwards from ``frame``."""
        while frame is not None:
            found = self._plugin_of.get(frame.f_code)
            if found is not None:
                return found
            frame = frame.f_back
        return None


def _naming(hook: Any, attribution: Attribution, plugin: str | None = None) -> Callable[..., Any]:
    """``hook``, with an exception a hookimpl raises re-raised as a :class:`PluginFailure` naming its plugin.

    ``plugin`` when ``hook`` calls one plugin only; otherwise the plugin is
    found from the traceback (:meth:`Attribution.raised_by`), only when
    something raised: a call that succeeds costs one function call more than
    pluggy's own.
    """

    def call(**kwargs: Any) -> Any:
        try:
            return hook(**kwargs)
        except PluginFailure:
            raise
        except Exception as error:  # noqa: BLE001 - re-raised with the plugin's name
            raiser = plugin or attribution.raised_by(error.__traceback__)
            if raiser is None:  # raised by pluggy itself (a missing argument): nobody's to name
                raise
            raise PluginFailure(raiser, error) from error

    return call


def _source(function: Callable[..., Any]) -> str:
    """``file:line`` of a hookimpl (of the function a decorator wraps)."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "?"


def unwrapped(error: BaseException) -> BaseException:
    """The error itself, out of the :class:`PluginFailure` that names its plugin."""
    return error.error if isinstance(error, PluginFailure) else error


def describe(error: BaseException, host: str) -> str:
    """One line naming the plugin and the failure, without repeating the host."""
    plugin = ""
    if isinstance(error, PluginFailure):
        plugin = f"{error.plugin}: "
        error = error.error
    if isinstance(error, FapError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    prefix = f"{host}: "
    if text.startswith(prefix):
        text = text[len(prefix):]
    return plugin + text
