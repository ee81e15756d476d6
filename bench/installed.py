"""What the benchmarks run is fap as an install has it: every module's bytecode written beforehand.

``pip install`` compiles each module to a ``.pyc`` as it installs it. A
checkout installed editable gets them on its first runs, unless
``PYTHONDONTWRITEBYTECODE`` is set (as it is on some CI machines and
containers): then every ``fap`` started compiles all of its modules again,
~70 ms that no installed fap pays. The benchmarks write them first.
"""

from __future__ import annotations

import compileall
import importlib
import os
from importlib.metadata import entry_points


def compile_fap() -> None:
    """Write the bytecode of fapistrano and of every installed plugin distribution's package."""
    names = {"fapistrano"} | {entry.value.split(":")[0].split(".")[0] for entry in entry_points(group="fapistrano")}
    for name in sorted(names):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if module.__file__ and os.path.basename(module.__file__) == "__init__.py":
            compileall.compile_dir(os.path.dirname(module.__file__), quiet=1)
