"""A pickle module that builds tensors and plain data and refuses every other global.

Passed to ``torch.load(pickle_module=...)``: torch keeps handling storages and the zip
container while every class or function the pickle names goes through
:meth:`Unpickler.find_class`, which only resolves an allowlist. A pickle that names anything
else (``os.system``, ``builtins.eval``, a user class) raises :class:`RefusedGlobal` before the
object is called, so nothing from the file runs.

We do not use ``torch.load(weights_only=True)`` alone because its unpickler cannot fill dict
subclasses, and the official Swin checkpoints carry their yacs ``CfgNode`` config as one.
Configuration classes on :data:`DATA_CLASSES` are rebuilt as :class:`PickledConfig`, a plain dict.

Tensors are checked before they are built (:func:`check_view`): a pickle states each tensor's
shape, strides and offset into a storage, and a tiny file can claim an 82 GB tensor by giving
one element stride 0. Every view must lie inside its storage without overlapping itself, and,
inside :func:`byte_budget`, the bytes all tensors claim are bounded by the file's size. Meta,
sparse, quantised and nested tensors (none of which a model checkpoint we read holds) are
refused with :class:`RefusedTensor`.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import io
import math
import pickle
from collections.abc import Iterator
from typing import Any

import torch

UnpicklingError = pickle.UnpicklingError


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a global outside the allowlist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"refused global {name}")
        self.name = name


class RefusedTensor(pickle.UnpicklingError):
    """A tensor whose claimed shape, strides or kind does not fit the bytes stored for it."""


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

# Rebuilders taking (storage, storage_offset, size, stride, ...): checked by check_view first.
_VIEW_REBUILDERS = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"})
_TORCH_REBUILDERS = _VIEW_REBUILDERS | {"_rebuild_parameter", "_rebuild_parameter_with_state"}
# Tensor kinds no checkpoint we read holds; refused by name (their rebuilders take unchecked shapes).
_REFUSED_REBUILDERS = {
    "_rebuild_meta_tensor_no_storage": "a meta tensor (a shape without data)",
    "_rebuild_device_tensor_from_numpy": "a tensor rebuilt from a numpy array",
    "_rebuild_qtensor": "a quantised tensor",
    "_rebuild_sparse_tensor": "a sparse tensor",
    "_rebuild_nested_tensor": "a nested tensor",
    "_rebuild_wrapper_subclass": "a tensor subclass",
}
_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("tensor_byte_budget", default=None)


@contextlib.contextmanager
def byte_budget(max_bytes: int) -> Iterator[None]:
    """Within this block, the tensors rebuilt may claim at most ``max_bytes`` in all (views of shared storage count)."""
    token = _budget.set([max_bytes])
    try:
        yield
    finally:
        _budget.reset(token)


def _dims(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list | torch.Size) or not all(type(d) is int and d >= 0 for d in value):
        raise RefusedTensor(f"tensor {what} {_short(value)} is not a list of non-negative integers")
    if len(value) > 64:
        raise RefusedTensor(f"tensor with {len(value)} dimensions")
    return tuple(value)


def check_view(storage: Any, offset: object, size: object, stride: object, dtype: torch.dtype | None = None) -> None:
    """Refuse a tensor view that reaches outside its storage, overlaps itself, or exceeds the byte budget.

    Raises:
        RefusedTensor: the claimed view does not fit the stored bytes.
    """
    shape, steps = _dims(size, "shape"), _dims(stride, "strides")
    if len(shape) != len(steps) or type(offset) is not int or offset < 0:
        raise RefusedTensor(f"tensor view {_short(size)} / {_short(stride)} at offset {_short(offset)} is malformed")
    if isinstance(storage, torch.storage.TypedStorage):  # the private names: the public ones warn of deprecation
        storage, dtype = storage._untyped_storage, storage.dtype
    if isinstance(storage, torch.UntypedStorage) and isinstance(dtype, torch.dtype):
        itemsize = torch._utils._element_size(dtype)
        elements, device = storage.nbytes() // itemsize, storage.device
    else:
        raise RefusedTensor(f"tensor data is a {type(storage).__name__}, not a storage")
    if device.type != "cpu":
        raise RefusedTensor(f"tensor storage on {device.type} (expected bytes read from the file)")
    numel = math.prod(shape)
    if numel == 0:
        return
    dims = sorted((st, sz) for sz, st in zip(shape, steps, strict=True) if sz > 1)
    reach = 1  # elements spanned by the dimensions checked so far
    for step, extent in dims:
        if step < reach:
            raise RefusedTensor(f"tensor of shape {list(shape)} with strides {list(steps)} overlaps itself")
        reach = step * (extent - 1) + reach
    if offset + reach > elements:
        raise RefusedTensor(
            f"tensor of shape {list(shape)} needs {offset + reach} elements of a storage holding {elements}"
        )
    budget = _budget.get()
    if budget is not None:
        budget[0] -= numel * itemsize
        if budget[0] < 0:
            raise RefusedTensor("the tensors claim more bytes than the file holds (views of shared storage?)")


def _checked(rebuild: Any, name: str) -> Any:
    def build(storage, storage_offset, size, stride, *rest, **kwargs):
        dtype = rest[2] if name == "_rebuild_tensor_v3" and len(rest) > 2 else kwargs.get("dtype")
        check_view(storage, storage_offset, size, stride, dtype)
        return rebuild(storage, storage_offset, size, stride, *rest, **kwargs)

    return build


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    if module == "torch._utils" and name in _REFUSED_REBUILDERS:
        raise RefusedTensor(f"the checkpoint holds {_REFUSED_REBUILDERS[name]}, which is not model weights")
    if module == "torch._utils" and name in _VIEW_REBUILDERS:
        return _checked(getattr(torch._utils, name), name)
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
