"""A pickle module that builds tensors and plain data and refuses every other global.

Passed to ``torch.load(pickle_module=...)``: torch keeps handling storages and the zip
container while every class or function the pickle names goes through
:meth:`Unpickler.find_class`, which only resolves an allowlist. A pickle that names anything
else (``os.system``, ``builtins.eval``, a user class) raises :class:`RefusedGlobal` before the
object is called, so nothing from the file runs.

We do not use ``torch.load(weights_only=True)`` alone because its unpickler cannot fill dict
subclasses, and the official Swin checkpoints carry their yacs ``CfgNode`` config as one.
Configuration classes on :data:`DATA_CLASSES` are rebuilt as :class:`PickledConfig`, a plain dict.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import torch

UnpicklingError = pickle.UnpicklingError


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a global outside the allowlist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"refused global {name}")
        self.name = name


class PickledConfig(dict):
    """Stand-in for configuration objects pickled into checkpoints (yacs CfgNode, argparse Namespace).

    Items set by the pickle become dict items, attributes become ``__dict__`` entries, and
    nothing of the original class runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if args and isinstance(args[0], dict):
            self.update(args[0])
        self.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __reduce__(self):  # never re-pickle under our own name
        return (dict, (dict(self),))


# Configuration classes whose pickles only set items and attributes.
DATA_CLASSES = frozenset({"yacs.config.CfgNode", "argparse.Namespace"})

_TORCH_REBUILDERS = frozenset(
    {
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_qtensor",
        "_rebuild_sparse_tensor",
        "_rebuild_nested_tensor",
    }
)
_PLAIN = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Tensor"): torch.Tensor,
}


def _numpy_allowed(module: str, name: str) -> Any | None:
    if not module.startswith("numpy"):
        return None
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed = {
        ("multiarray", "scalar"): core.multiarray.scalar,
        ("multiarray", "_reconstruct"): core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    key = (module.rsplit(".", 1)[-1], name)
    if key in allowed:
        return allowed[key]
    if module == "numpy.dtypes" and name.endswith("DType"):
        return getattr(np.dtypes, name, None)
    return None


def resolve(module: str, name: str) -> Any:
    """The object an allowed global names; raises :class:`RefusedGlobal` for anything else."""
    if f"{module}.{name}" in DATA_CLASSES:
        return PickledConfig
    if (module, name) in _PLAIN:
        return _PLAIN[(module, name)]
    if module == "torch._utils" and name in _TORCH_REBUILDERS:
        return getattr(torch._utils, name)
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if module == "torch" and name.endswith("Storage") and hasattr(torch, name):
        return getattr(torch, name)
    if module == "_codecs" and name == "encode":  # how protocol-2 pickles store bytes
        import codecs

        return codecs.encode
    found = _numpy_allowed(module, name)
    if found is not None:
        return found
    raise RefusedGlobal(f"{module}.{name}")


class Unpickler(pickle.Unpickler):
    """An unpickler that resolves only allowed globals and reports every failure as an ``UnpicklingError``.

    A damaged pickle makes the C unpickler (and torch's persistent-id hooks it calls) raise
    whatever the corrupt opcodes lead to: ``TypeError``, ``AttributeError``, ``OverflowError``,
    ``AssertionError``, ... Callers can then tell a bad file (``UnpicklingError``) from a refused
    global (:class:`RefusedGlobal`) without catching everything.
    """

    def find_class(self, module: str, name: str) -> Any:
        return resolve(module, name)

    def load(self) -> Any:
        try:
            return super().load()
        except pickle.UnpicklingError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to decode untrusted bytes means a damaged pickle
            raise UnpicklingError(f"damaged pickle ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else ""


def load(file, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return load(io.BytesIO(data), **kwargs)
