"""A restricted unpickler for data pickles (ScenarioNet scenes): numpy arrays and containers only.

A pickle is a program: ``pickle.load`` calls whatever callable the file names, so loading an
untrusted ``.pkl`` with the standard unpickler runs arbitrary code. :func:`safe_load` admits
only the globals that numpy arrays, numpy scalars and dtypes need, plus plain builtin
containers, and refuses every other global *before* it is imported or called. Each admitted
callable is wrapped so that it can only rebuild data.

Refusing globals is not enough on its own: numpy's ``dtype.__setstate__`` takes raw flags, and
a crafted state (or ``dtype('f8', copy=False)``, numpy's shared float64 singleton) can mark
plain floats as object references or corrupt numpy process-wide. So the state of every dtype
and array (the pickle's ``BUILD`` opcode) is checked against what numpy itself would write
before numpy sees it. That hook needs the pure-Python unpickler (``pickle._Unpickler``, the
reference implementation the C one mirrors); it costs ~70 ms on a 4 MB scene.

Errors: a forbidden global, dtype or state raises :class:`~cordillera.errors.UnsafePickleError`;
any other malformation :class:`~cordillera.errors.SceneFormatError`; both name the file.
Supported: pickle protocols 0-5 (Python 2 pickles with ``encoding="latin1"``), arrays of
bool / int / uint / float / complex / bytes / str; not structured, object or datetime dtypes.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

import numpy as np

from cordillera.errors import SceneFormatError, UnsafePickleError

# numpy's own _reconstruct, reached without importing the deprecated numpy.core path.
_ndarray_reconstruct = cast(Callable[..., np.ndarray], np.zeros(0).__reduce__()[0])
_DTYPE_KINDS = "biufcSU"  # plain scalars, bytes and str: nothing that holds references
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1"}


class _NdarrayClass:
    """Stands in for ``numpy.ndarray``: pickles pass the class to ``_reconstruct`` and never
    call it, so calling it (``ndarray(huge_shape)``) is refused instead of allocating."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise UnsafePickleError("pickle calls numpy.ndarray directly")


_NDARRAY = _NdarrayClass()


def _reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
    # numpy always pickles arrays as _reconstruct(ndarray, (0,), b'b') followed by a BUILD
    # with the real shape, dtype and bytes (checked in _build_array).
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"_reconstruct of {type(subtype).__name__}, not numpy.ndarray")
    if shape not in ((0,), [0]) or typecode not in (b"b", "b"):
        raise UnsafePickleError(f"_reconstruct({shape!r:.40}, {typecode!r:.20}), not ((0,), b'b')")
    return _ndarray_reconstruct(np.ndarray, (0,), b"b")


def _dtype(obj: object, align: object = False, copy: object = True) -> np.dtype[Any]:
    if not isinstance(obj, str):
        raise UnsafePickleError(f"numpy.dtype of {type(obj).__name__}, expected a type string")
    # Always a private copy: copy=False would hand out numpy's shared dtype singletons, and
    # the BUILD that follows would modify them for the whole process.
    d = np.dtype(obj, align=bool(align), copy=True)
    if d.kind not in _DTYPE_KINDS or d.fields is not None or d.subdtype is not None:
        raise UnsafePickleError(f"numpy dtype {d} is not allowed (only plain numeric / str)")
    return d


def _scalar(dtype: object, *args: object) -> object:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _DTYPE_KINDS:
        raise UnsafePickleError(f"numpy scalar of {dtype!r:.40}")
    raw = args[0] if len(args) == 1 else None
    if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise UnsafePickleError(f"numpy scalar of {dtype} without its {dtype.itemsize} raw bytes")
    return np.frombuffer(raw, dtype=dtype, count=1)[0]


def _frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    # Protocol 5 (Python >= 3.14's default) pickles arrays with their bytes in-band.
    if not isinstance(dtype, np.dtype) or dtype.kind not in _DTYPE_KINDS:
        raise UnsafePickleError(f"numpy._frombuffer of dtype {dtype!r:.40}")
    if not isinstance(buf, bytes | bytearray | pickle.PickleBuffer):
        raise UnsafePickleError(f"numpy._frombuffer of {type(buf).__name__}")
    if not isinstance(shape, tuple) or order not in ("C", "F"):
        raise UnsafePickleError(f"numpy._frombuffer with shape {shape!r:.60}, order {order!r:.9}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)  # type: ignore[arg-type]


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    # Protocol 2 stores bytes as _codecs.encode(str, 'latin1'); no other codec is needed.
    if not isinstance(text, str) or not isinstance(encoding, str) or encoding not in _LATIN1:
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r:.30}")
    return text.encode("latin1")


def _bytes(text: object = b"", encoding: object = "latin-1") -> bytes:
    # bytes(10**10) would allocate from a few bytes of pickle: only rebuild given data.
    if isinstance(text, bytes):
        return text
    return _latin1_encode(text, encoding)


def _bytearray(text: object = b"", encoding: object = "latin-1") -> bytearray:
    return bytearray(_bytes(text, encoding))


_CONTAINERS: dict[str, Callable[..., Any]] = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "bytes": _bytes,
    "bytearray": _bytearray,
}

ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_encode,
    **{("builtins", k): v for k, v in _CONTAINERS.items()},
    **{("__builtin__", k): v for k, v in _CONTAINERS.items()},  # protocols 0-2
}
"""Every global a pickle may name, mapped to the (guarded) callable it gets instead."""


def _build_dtype(d: np.dtype[Any], state: object) -> None:
    """Apply a dtype's pickled state only if it is exactly what numpy writes for that type."""
    order = state[1] if isinstance(state, tuple) and len(state) == 8 else None
    if order not in ("<", ">", "|", "="):
        raise UnsafePickleError(f"numpy dtype state {state!r:.80}")
    want = d if order in ("|", "=") else d.newbyteorder(order)
    if state != want.__reduce__()[2]:
        raise UnsafePickleError(f"numpy dtype state {state!r:.80} is not that of {want}")
    cast(Any, d).__setstate__(state)  # numpy's stubs omit dtype.__setstate__


def _build_array(arr: np.ndarray, state: object) -> None:
    """Apply an array's pickled (version, shape, dtype, fortran, bytes) after checking it."""
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise UnsafePickleError(f"numpy array state {state!r:.80}")
    _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise UnsafePickleError(f"numpy array shape {shape!r:.60}")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _DTYPE_KINDS or dtype.hasobject:
        raise UnsafePickleError(f"numpy array of dtype {dtype!r:.40}")
    if not isinstance(raw, bytes | bytearray | str) or fortran not in (True, False):
        raise UnsafePickleError(f"numpy array data of type {type(raw).__name__}")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise SceneFormatError(f"numpy array of {shape} {dtype} with {len(raw)} bytes of data")
    arr.__setstate__(state)


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves globals through :data:`ALLOWED` only; BUILD only on checked numpy states."""

    dispatch: ClassVar[dict[int, Callable[..., None]]] = dict(pickle._Unpickler.dispatch)
    # Set up by the base class's load() (typeshed does not declare them).
    stack: list[Any]
    read: Callable[[int], bytes]
    append: Callable[[Any], None]

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")  # latin1: Python 2 numpy pickles
        self.size = len(data)
        self.arrays: list[np.ndarray] = []

    def find_class(self, module: str, name: str) -> Any:
        try:
            fn = ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle refers to {module}.{name}, which is not allowed "
                "(only numpy arrays and plain containers)"
            ) from None
        if fn is _reconstruct or fn is _frombuffer:
            return self._recording(fn)
        return fn

    def _recording(self, fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def build(*args: Any) -> np.ndarray:
            arr = fn(*args)
            self.arrays.append(arr)
            return arr

        return build

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            _build_dtype(inst, state)
        elif isinstance(inst, np.ndarray):
            _build_array(inst, state)
        else:
            raise UnsafePickleError(f"pickle sets the state of a {type(inst).__name__}")

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self) -> None:
        # The stock version allocates (and zero-fills) the declared size before reading it.
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self.size:
            raise SceneFormatError(f"BYTEARRAY8 of {n} bytes in a {self.size}-byte pickle")
        self.append(bytearray(self.read(n)))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def safe_load(data: bytes | bytearray | memoryview | BinaryIO, path: str | Path | None) -> object:
    """Unpickle ``data`` allowing only numpy arrays/scalars/dtypes and builtin containers.

    Args:
        data: the pickle's bytes, or a binary file positioned at its start (read whole).
        path: the file the bytes came from, named in every error.

    Returns:
        The unpickled object (dicts, lists, tuples, sets, str, numbers, numpy arrays).

    Raises:
        UnsafePickleError: the pickle names any other global, dtype or object state.
        SceneFormatError: any other defect (truncated, corrupt, wrong arguments...).
    """
    raw = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else data.read()
    unpickler = _RestrictedUnpickler(raw)
    try:
        obj = unpickler.load()
    except SceneFormatError as e:
        raise e.at(path) if path is not None else e from None
    except Exception as e:
        # Corrupt pickles fail in open-ended ways inside the unpickler and numpy (EOFError,
        # UnpicklingError, ValueError, TypeError, MemoryError, IndexError, KeyError,
        # AttributeError, struct.error, RecursionError, OverflowError...): all format errors.
        raise SceneFormatError(
            f"not a readable pickle: {type(e).__name__}: {str(e)[:200]}", path=path
        ) from None
    # Belt and braces: every array came from an admitted builder; none may hold objects.
    for arr in unpickler.arrays:
        if arr.dtype.hasobject:
            raise UnsafePickleError(f"object-dtype array of shape {arr.shape}", path=path)
    return obj
