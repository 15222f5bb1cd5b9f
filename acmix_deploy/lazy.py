"""Package faces that import their public names on first use (PEP 562 module ``__getattr__``).

``import acmix_deploy`` and ``import acmix_deploy.models`` must not pay for torch or ONNX Runtime:
commands that only read a table or a manifest start in a fraction of a second. A face lists
``name -> owning submodule`` and gets its ``__getattr__``/``__dir__`` from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose names live in the submodules ``exports`` names.

    Args:
        package: the face's ``__name__``.
        exports: public name -> relative module owning it (``".predictor"``).
        namespace: the face's ``globals()``; a resolved name is cached there, so later lookups are plain.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
