"""Modules a library imports eagerly but a stage rarely uses, loaded only when first used.

Great Expectations imports SciPy's statistics and Altair when it starts, for expectations the
contracts do not use (KL divergence, KS tests) and their charts: 1.1-1.7 s of its 3-4 s import.
Its validation worker imports it while the transform runs, on what the transform leaves of the
cores, and validation waits for the import if it has not ended by then. A deferred module is a
stand-in placed in ``sys.modules``: ``import`` statements get the stand-in without running the
module, and the first use of any of its attributes imports the real module, so code that does
use it behaves exactly as before.
"""

from __future__ import annotations

import importlib
import sys
import types
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
            sys.modules[name] = _Deferred(name)
