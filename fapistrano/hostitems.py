"""Per-host settings: an item of ``hosts:`` written as a mapping, ``{host: NAME, setting: value, ...}``.

Such an item overrides its stage/role's values for that host only. Precedence,
lowest first: core defaults, plugin settings, the top of deploy.yml, the
stage/role block, the host item, the command line. ``environment:`` in a host
item merges over the role's (a variable it names wins, the others stay). A
host listed in two roles keeps each role's own values: the items belong to
the ``hosts:`` list they are written in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, cast

from fapistrano.config import (
    _RESERVED,
    RUN_NAMES,
    ConfigError,
    Declared,
    DeployFile,
    HostSpec,
    Origin,
    RoleSettings,
    _describe,
    _plain,
    _scalar,
    check_type,
    unknown_setting_hint,
)

#: Keys a host item cannot set: they choose the hosts (and their plugins), or fap sets them per run.
NOT_PER_HOST = frozenset({"hosts", "plugins", *RUN_NAMES, *_RESERVED})
#: Settings of the run as a whole (how many hosts at once, in which batches, how many may fail): one value per run.
RUN_WIDE = frozenset({"max_parallel", "batch_size", "max_fail"})


@dataclass(frozen=True)
class HostLayer:
    """The settings one host item sets, type-checked, each with its origin (``deploy.yml:14 (host NAME)``)."""

    values: Mapping[str, Any]
    origins: Mapping[str, Origin]


def read_hosts(deployfile: DeployFile, layer: Any, declared: Mapping[str, Declared],
               warnings: list[str]) -> tuple[list[Any], dict[HostSpec, HostLayer]]:
    """``layer``'s ``hosts:`` as plain host texts, and the settings of each item written as a mapping.

    Keys are checked as deploy.yml's own are: a declared setting is
    type-checked, a key one edit from a known setting is an error (unless
    ``custom_settings`` lists it), another unknown key is a setting of the
    user's own (a warning when a known name is close).
    """
    items = layer["hosts"]
    if not isinstance(items, list) or not any(isinstance(item, (Mapping, list)) for item in items):
        return items, {}  # the usual type check says what is wrong with anything else
    texts: list[Any] = []
    layers: dict[HostSpec, HostLayer] = {}
    for index, item in enumerate(items):
        where = _item_line(deployfile, layer, items, index)
        if isinstance(item, list):
            raise ConfigError(f"{where}: hosts: expected a host ([user@]host[:port]) or a mapping with host:, got a list")
        if not isinstance(item, Mapping):
            texts.append(item)
            continue
        if "host" not in item:
            raise ConfigError(f"{where}: hosts: a host written as a mapping needs host: NAME, e.g. {{host: web2, setting: value}}")
        name = item["host"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}: hosts: host: expected a host name [user@]host[:port], got {_describe(_plain(name))}")
        spec = HostSpec.parse(name, Origin("file", where))
        texts.append(name)
        layers[spec] = _host_layer(deployfile, item, spec, where, declared, warnings)
    return texts, layers


def _host_layer(deployfile: DeployFile, item: Mapping[str, Any], spec: HostSpec, where: str,
                declared: Mapping[str, Declared], warnings: list[str]) -> HostLayer:
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for key, value in item.items():
        if key == "host":
            continue
        line = _key_line(deployfile, item, key, where)
        prefix = f"{line}: hosts: host {spec.name}:"
        if not isinstance(key, str):
            raise ConfigError(f"{prefix} setting names must be strings, got {key!r}")
        if key in NOT_PER_HOST or key.endswith("_plugins"):
            raise ConfigError(f"{prefix} {key} cannot be set per host (it chooses hosts or plugins, or fap sets it);"
                              " set it in the stage/role block")
        if key in RUN_WIDE:
            raise ConfigError(f"{prefix} {key} applies to the whole run, not to one host;"
                              " set it at the top level, in the stage/role block or on the command line")
        origin = Origin("host", line, host=spec.name)
        if key in declared:
            values[key] = check_type(key, value, declared[key], _named(origin, spec))
        else:
            values[key] = check_type(key, value, "" if _scalar(_plain(value)) else value, _named(origin, spec))
            if key not in deployfile.custom_settings:
                hint = unknown_setting_hint(key, declared, prefix.removesuffix(":"))
                if hint:
                    warnings.append(f"{line}: hosts: host {spec.name}: {key} is not a known setting{hint}")
        origins[key] = origin
    return HostLayer(MappingProxyType(values), MappingProxyType(origins))


def _named(origin: Origin, spec: HostSpec) -> Origin:
    """The origin type errors start with: ``deploy.yml:14: hosts: host NAME: key: ...``."""
    return Origin("file", f"{origin.where}: hosts: host {spec.name}")


def for_host(settings: RoleSettings, host: HostSpec) -> RoleSettings:
    """``settings`` with ``host``'s item laid over them: below the command line, ``environment`` merged."""
    layer = _layer_of(settings.host_settings, host)
    if layer is None:
        return settings
    values = dict(settings.values)
    origins = dict(settings.origins)
    for key, value in layer.values.items():
        if origins.get(key, Origin("core")).kind == "cli":
            continue
        if key == "environment" and isinstance(values.get(key), Mapping) and isinstance(value, Mapping):
            value = {**values[key], **value}
        values[key] = value
        origins[key] = layer.origins[key]
    return replace(settings, values=MappingProxyType(values), origins=MappingProxyType(origins))


def _layer_of(layers: Mapping[HostSpec, HostLayer], host: HostSpec) -> HostLayer | None:
    if host in layers:
        return layers[host]
    # ``--hosts`` on the command line names hosts without the user@ or port deploy.yml wrote.
    same = [layer for spec, layer in layers.items() if spec.name == host.name and (host.port is None or spec.port == host.port)]
    return same[0] if len(same) == 1 else None


def _item_line(deployfile: DeployFile, layer: Any, items: Any, index: int) -> str:
    try:
        return f"{deployfile.path}:{cast(Any, items).lc.item(index)[0] + 1}"  # ruamel's line info
    except (AttributeError, KeyError, TypeError):
        return deployfile.where(layer, "hosts")


def _key_line(deployfile: DeployFile, item: Any, key: Any, where: str) -> str:
    try:
        return f"{deployfile.path}:{cast(Any, item).lc.key(key)[0] + 1}"  # ruamel's line info
    except (AttributeError, KeyError, TypeError):
        return where
