"""Modules a library imports eagerly but a stage rarely uses, loaded only when first used.

Great Expectations imports SciPy's statistics and Altair when it starts, for expectations the
contracts do not use (KL divergence, KS tests) and their charts: 1.1-1.7 s of its 3-4 s import.
Its validation worker imports it while the transform runs, on what the transform leaves of the
cores, and validation waits for the import if it has not ended by then. A deferred module is a
stand-in placed in ``sys.modules``: ``import`` statements get the stand-in without running the
module, and the first use of any of its attributes imports the real module, so code that does
use it behaves exactly as before. A stand-in knows its module's file, found without running the
module or its packages, so code that only asks where a module lives imports nothing: SQLMesh's
Python API, at every call, compares its callers' files with that of its notebook magics, whose
import loads IPython.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from itertools import accumulate
from typing import Any


class _Deferred(types.ModuleType):
    """Stands in for the module of its name until one of its attributes is used."""

    def __getattr__(self, attribute: str) -> Any:
        # Only attributes the stand-in does not have reach here (a ModuleType has its name,
        # __spec__ and __loader__), so an import statement finds it without loading anything.
        real = self.__dict__.get("_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_real"] = importlib.import_module(self.__name__)
        return getattr(real, attribute)


def defer(*names: str) -> None:
    """Import each of ``names`` only when one of its attributes is first used. A module that is
    already imported stays as it is."""
    for name in names:
        if name not in sys.modules:
            stand_in = _Deferred(name)
            stand_in.__file__ = _location(name)
            sys.modules[name] = stand_in


def _location(name: str) -> str | None:
    """The file ``name`` would be loaded from (None if not found), found by the import system's
    path finder alone: neither the module nor its packages run."""
    search, origin = None, None
    for prefix in accumulate(name.split("."), lambda package, part: f"{package}.{part}"):
        spec = importlib.machinery.PathFinder.find_spec(prefix, search)
        if spec is None:
            return None
        search, origin = spec.submodule_search_locations, spec.origin
    return origin
