"""Batch parallelism with `jax.sharding`: a 1-D mesh with axis 'data' over the local devices, or
over every process's devices in a job of several (`devices=jax.devices()` after
`jax.distributed.initialize`; sample and refine take the whole global batch on each process
and give global arrays back, `to_host` gathers them; training places each process's own rows,
`process_rows` / `shard_rows`), the batch split along its leading axis, params (and keys)
replicated. Training, sampling and
refinement use the same three placements; XLA partitions the compiled program to follow them.
A batch that does not divide over the devices is padded (`pad_batch`) and cut back after.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """1-D mesh over `devices` (default: all local devices), axis 'data'."""
  return Mesh(np.asarray(devices if devices is not None else jax.local_devices()), ("data",))


def put(value, sharding: NamedSharding):
  """`value` placed with `sharding`. On a mesh that spans several processes (one JAX job over
  many hosts: `jax.distributed.initialize`, `devices=jax.devices()`), every process holds the
  whole value and hands its own devices their part (`jax.make_array_from_callback`)."""
  if sharding.is_fully_addressable:
    return jax.device_put(value, sharding)
  if isinstance(value, jax.Array) and not value.is_fully_addressable:  # already a global array
    if value.sharding.is_equivalent_to(sharding, value.ndim):
      return value
    if not value.is_fully_replicated:
      return jax.jit(lambda a: a, out_shardings=sharding)(value)  # resharded by XLA
    value = value.addressable_data(0)  # this process's full copy
  value = value if isinstance(value, jax.Array) else np.asarray(value)
  return jax.make_array_from_callback(np.shape(value), sharding, lambda index: value[index])


def shard_batch(batch, mesh: Mesh):
  """Place a pytree of host or device arrays on the mesh, split along the leading (batch) axis."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.tree.map(lambda a: put(a, sharding), batch)


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
  """(lo, hi): the rows of a global batch of `batch_size`, split along 'data' over `mesh`, that
  this process's devices hold. One block: a mesh over `jax.devices()` lists each process's
  devices together."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  index = sharding.addressable_devices_indices_map((batch_size,))
  spans = {idx[0].indices(batch_size)[:2] for idx in index.values()}
  lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
  if sum(b - a for a, b in spans) != hi - lo:
    raise ValueError(f"this process's rows of the batch are not one block: {sorted(spans)}")
  return lo, hi


def shard_rows(rows, mesh: Mesh, batch_size: int):
  """A global batch of `batch_size` on the mesh from each process's own rows (a pytree of
  host arrays holding rows `process_rows(mesh, batch_size)` of it): no process holds the rest."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.tree.map(
    lambda a: jax.make_array_from_process_local_data(
      sharding, np.asarray(a), (batch_size, *np.shape(a)[1:])
    ),
    rows,
  )


def replicate(tree, mesh: Mesh):
  """A full copy of every leaf on every device of the mesh."""
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda a: put(a, sharding), tree)


def to_host(tree):
  """Every array leaf as a numpy array of its whole (global) value: gathered from all
  processes (`process_allgather`) where it is spread over several, copied otherwise. In a job
  over several processes every process must call it (for metrics, results files, plots)."""

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)

  return jax.tree.map(get, tree)


def batch_mesh(batch_size: int, devices: Optional[Sequence] = None) -> Optional[Mesh]:
  """The mesh that splits a batch over `devices` (default: all local devices), or None for one
  device. A batch that does not split evenly is padded by `pad_batch` (sample and refine key
  each item by its index, so padding changes no result)."""
  del batch_size  # any size: padded to a multiple of the device count
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices is empty")
  if len(devices) == 1:
    return None
  return data_mesh(devices)


def pad_batch(item_ids: np.ndarray, batch, mesh: Optional[Mesh]):
  """(item_ids, batch) padded to a multiple of the mesh's size: `batch` (a pytree of arrays
  with a leading axis B) repeats its first item, `item_ids` (i32[B], each item's key index)
  continues past the largest, so padded items have keys of their own. Unchanged without a mesh
  or when B divides evenly; the caller keeps the first B rows of the result."""
  extra = 0 if mesh is None else -len(item_ids) % mesh.devices.size
  if not extra:
    return item_ids, batch
  ids = np.concatenate([item_ids, item_ids.max(initial=-1) + 1 + np.arange(extra)])
  pad = lambda a: jnp.concatenate([jnp.asarray(a), jnp.repeat(jnp.asarray(a)[:1], extra, 0)])
  return ids.astype(item_ids.dtype), jax.tree.map(pad, batch)


def devices_for(batch_size: int, devices: Optional[Sequence] = None) -> list:
  """The longest prefix of `devices` (default: local devices) whose length divides batch_size."""
  devices = list(jax.local_devices() if devices is None else devices)
  n = max(k for k in range(1, len(devices) + 1) if batch_size % k == 0)
  return devices[:n]


def place(mesh: Optional[Mesh], replicated, batched):
  """(replicated on every device, batched split over 'data'), or both unchanged without a mesh."""
  if mesh is None:
    return replicated, batched
  return replicate(replicated, mesh), shard_batch(batched, mesh)
