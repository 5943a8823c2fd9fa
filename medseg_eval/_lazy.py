"""Packages whose public names load on first use (PEP 562), so that importing one needs only what is used.

``medseg_eval`` and ``medseg_eval.datasets`` list their public names with the submodule that defines each;
a name loads with its submodule the first time it is looked up. A public function that shares its name
with its submodule (``evaluate``, ``datasets.build``) stays the function when the submodule is imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class LazyPackage(types.ModuleType):
    """A package module whose ``_LAZY`` maps each public name to ``(submodule, attribute)``; ``attribute``
    ``None`` names the submodule itself."""

    _LAZY: Mapping[str, tuple[str, str | None]]

    def __dir__(self) -> list[str]:
        return sorted(self.__dict__.get("__all__", ()))

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule binds it to the package's attribute of the same name: where that name is a
        # function of the package, it stays the function, as `from package import name` promises.
        lazy = self.__dict__.get("_LAZY", {})
        if isinstance(value, types.ModuleType) and name in lazy and lazy[name][1] is not None:
            return
        super().__setattr__(name, value)


def load(package: str, lazy: Mapping[str, tuple[str, str | None]], name: str) -> Any:
    """The public ``name`` of ``package``, imported from its submodule and kept in the package (the body of
    each lazy package's module ``__getattr__``).

    Examples
    --------
    >>> load("medseg_eval", {"errors": ("errors", None)}, "errors").__name__
    'medseg_eval.errors'
    """
    if name not in lazy:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module_name, attribute = lazy[name]
    module = importlib.import_module(f"{package}.{module_name}")
    value = module if attribute is None else getattr(module, attribute)
    sys.modules[package].__dict__[name] = value  # later lookups find it directly
    return value


def make_lazy(module_name: str) -> None:
    """Turn the already imported package ``module_name`` (with its ``_LAZY`` and ``__all__``) into a
    :class:`LazyPackage`.

    Examples
    --------
    >>> import medseg_eval
    >>> type(medseg_eval).__name__, callable(medseg_eval.evaluate)
    ('LazyPackage', True)
    """
    sys.modules[module_name].__class__ = LazyPackage
