"""Batch parallelism over local devices with `jax.sharding`: a 1-D mesh with axis 'data', the
batch split along its leading axis, params (and keys) replicated. Training, sampling and
refinement use the same three placements; XLA partitions the compiled program to follow them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """1-D mesh over `devices` (default: all local devices), axis 'data'."""
  return Mesh(np.asarray(devices if devices is not None else jax.local_devices()), ("data",))


def shard_batch(batch, mesh: Mesh):
  """Place a pytree of host or device arrays on the mesh, split along the leading (batch) axis."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.tree.map(lambda a: jax.device_put(a, sharding), batch)


def replicate(tree, mesh: Mesh):
  """A full copy of every leaf on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def batch_mesh(batch_size: int, devices: Optional[Sequence] = None) -> Optional[Mesh]:
  """The mesh that splits a batch of `batch_size` over `devices` (default: all local devices),
  or None for one device. ValueError when the batch does not split evenly: padding would change
  the per-sample keys, so the caller picks a multiple or fewer devices."""
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices is empty")
  if len(devices) == 1:
    return None
  if batch_size % len(devices):
    raise ValueError(
      f"a batch of {batch_size} does not split over {len(devices)} devices: use a "
      f"multiple of {len(devices)}, or devices=jax.local_devices()[:k] for a k "
      f"that divides it (devices_for({batch_size}) picks the most)"
    )
  return data_mesh(devices)


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
