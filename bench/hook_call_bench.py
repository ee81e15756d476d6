#!/usr/bin/env python3
"""The phase call path's own cost: one ``fap_deploy_updated`` call with 6 plugins, through ``Plugins.caller``.

Each plugin's hookimpl does nothing, so what is measured is fap's and
pluggy's overhead per host per phase: getting the caller for the host's
active plugins and calling it, when they are all of the run's plugins and
when one of them is not (a subset), and, separately, the call alone. Prints the
median and the minimum of 7 rounds of 20000 calls, in microseconds; on a
loaded machine compare the minimums.

    python bench/hook_call_bench.py
"""

from __future__ import annotations

import statistics
import sys
import timeit
import types

from fapistrano.plugins import Plugins

PLUGIN = "from fapistrano import hookimpl\n@hookimpl\ndef fap_deploy_updated(ctx):\n    return None\n"


def main(plugin_count: int = 6, number: int = 20000, rounds: int = 7) -> None:
    plugins = Plugins()
    names = []
    for index in range(plugin_count):
        module = types.ModuleType(f"bench_plugin_{index}")
        exec(PLUGIN, module.__dict__)  # noqa: S102 - the fixed source above
        sys.modules[module.__name__] = module
        names.append((module.__name__, f"deploy.yml:{index + 1}"))
    plugins.load(names)
    active = [name for name, _where in names]
    # What the core's own hookimpls of the phase read: a host with no step of hooks: in it.
    ctx = types.SimpleNamespace(target=types.SimpleNamespace(steps=()), phase="updated")

    def caller_and_call() -> None:
        plugins.caller("fap_deploy_updated", active)(ctx=ctx)

    # A target whose plugins are not all of the run's (another role enables one more): pluggy's subset caller.
    fewer = active[1:]

    def subset_caller_and_call() -> None:
        plugins.caller("fap_deploy_updated", fewer)(ctx=ctx)

    hook = plugins.caller("fap_deploy_updated", active)
    for label, work in (("caller() + call", caller_and_call), ("subset + call", subset_caller_and_call),
                        ("call only", lambda: hook(ctx=ctx))):
        times = [timeit.timeit(work, number=number) / number * 1e6 for _ in range(rounds)]
        print(f"{label:>16}, {plugin_count} plugins: median {statistics.median(times):.2f} us, min {min(times):.2f} us")


if __name__ == "__main__":
    main()
