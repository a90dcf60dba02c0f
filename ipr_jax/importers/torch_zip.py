"""Read a PyTorch zip checkpoint (`torch.save`, Lightning `.ckpt`) without torch, safely.

The file is untrusted input: `data.pkl` is unpickled by an allow-list unpickler that, like
torch's `weights_only=True` loading, rebuilds only tensors (as numpy arrays) and plain
containers, and refuses every other global by name. Storages are the raw little-endian records
`<archive>/data/<key>`; a tensor is a strided view into one (aliased tensors share a storage).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class CheckpointFormatError(ValueError):
  """The file is not a checkpoint we can read safely (names the file and the reason)."""


class _StorageType:
  """Stand-in for `torch.FloatStorage` & co: only carries the element dtype."""

  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_unused):
  """torch._utils._rebuild_tensor_v2: a strided view of `storage` (bounds-checked), copied."""
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
    raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.size:
    raise pickle.UnpicklingError(
      f"tensor of size {size} reads past its storage of {storage.size} "
      "elements (truncated or corrupt file)"
    )
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], size, tuple(s * storage.itemsize for s in stride)
  )
  return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_unused):
  return data


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
  **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, data: bytes, load_storage):
    super().__init__(io.BytesIO(data))
    self._load_storage = load_storage

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise pickle.UnpicklingError(
        f"refusing to load {module}.{name}: only tensors and plain containers are allowed "
        "(the file may be malicious or not a weights checkpoint)"
      )
    return _ALLOWED[(module, name)]

  def persistent_load(self, pid):
    if not (
      isinstance(pid, tuple)
      and len(pid) == 5
      and pid[0] == "storage"
      and isinstance(pid[1], _StorageType)
    ):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
    _, storage_type, key, _location, numel = pid
    return self._load_storage(storage_type.dtype, str(key), int(numel))


def read(path: str):
  """The unpickled object of a torch zip checkpoint, tensors as numpy arrays (CPU, any device
  location). CheckpointFormatError naming `path` for anything else."""
  try:
    with zipfile.ZipFile(path) as zf:
      names = zf.namelist()
      pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
      if len(pkl) != 1:
        raise CheckpointFormatError(
          f"{path}: no single data.pkl in the zip (not a torch checkpoint)"
        )
      root = pkl[0][: -len("data.pkl")]
      order = (
        zf.read(root + "byteorder").decode().strip() if root + "byteorder" in names else "little"
      )
      if order != "little":
        raise CheckpointFormatError(f"{path}: byte order {order!r} is not supported")
      cache = {}

      def load_storage(dtype, key, numel):
        if key not in cache:
          name = f"{root}data/{key}"
          if name not in names:
            raise pickle.UnpicklingError(f"storage record {name} is missing")
          raw = zf.read(name)
          if len(raw) < numel * dtype.itemsize:
            raise pickle.UnpicklingError(
              f"storage record {name} holds {len(raw)} bytes, "
              f"{numel} x {dtype} needs {numel * dtype.itemsize}"
            )
          cache[key] = np.frombuffer(raw, dtype, count=numel)
        return cache[key]

      return _Unpickler(zf.read(pkl[0]), load_storage).load()
  except CheckpointFormatError:
    raise
  except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
    raise CheckpointFormatError(
      f"{path}: not a readable torch zip checkpoint ({type(e).__name__}: {e})"
    ) from e
  except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as e:
    raise CheckpointFormatError(f"{path}: {e}") from e
