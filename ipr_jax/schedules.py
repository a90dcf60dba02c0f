"""Sequential plans (method 3.1, 3.2) in exact integer arithmetic, and region orders.

With q = 1 - overlap = a / b as an exact fraction (overlap read as the decimal it prints as):
  M    = ceil(p_s + (n - 1) q p_s)          total steps (NFEs) for n blocks
  L    = M / ((n - 1) q + 1) = M b / den,   den = (n - 1) a + b
  Lc   = ceil(L)                            prototype length
  b_k  = floor(k L q) = floor(k M a / den)  block start steps, k = 0 .. n-1
For the shipped settings this is M = p_s + (n - 1) d and b_k = k d with d = p_s q. The same
integer formulas run on Python ints (`sequential_plan`) and on traced per-sample jnp ints inside
the sampler, so the [M + 1, R] schedule matrix is never built: a region's noise level follows
from its start step alone (`noise_level`, the closed form of method 3.2).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import chex
import jax.numpy as jnp

NEVER = 2**30  # start step of a region not selected yet


@dataclasses.dataclass(frozen=True)
class Plan:
  num_blocks: int  # n
  total_steps: int  # M (NFEs)
  proto_len: int  # Lc
  block_starts: tuple  # (b_0, ..., b_{n-1})


def overlap_fraction(overlap) -> tuple[int, int]:
  """(a, b) with 1 - overlap = a / b exactly; ValueError unless overlap is in [0, 1)."""
  if not 0.0 <= float(overlap) < 1.0:
    raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
  q = 1 - Fraction(str(overlap))
  return q.numerator, q.denominator


def check_steps_per_patch(steps_per_patch) -> None:
  if int(steps_per_patch) != steps_per_patch or steps_per_patch < 1:
    raise ValueError(f"steps_per_patch must be an integer >= 1, got {steps_per_patch}")


def ceil_div(x, y):
  """ceil(x / y) for non-negative ints, Python or jnp."""
  return -((-x) // y)


def plan_ints(n, steps_per_patch: int, a: int, b: int):
  """(M, Lc, den) for n blocks; works on Python ints and on jnp int arrays (n = 0 -> M = 0)."""
  nm1 = n - 1
  m = ceil_div(steps_per_patch * b + nm1 * steps_per_patch * a, b)
  den = nm1 * a + b
  if isinstance(n, int):
    den = max(den, 1)
    return (m if n > 0 else 0), ceil_div(m * b, den), den
  den = jnp.maximum(den, 1)
  return jnp.where(n > 0, m, 0), ceil_div(m * b, den), den


def block_start(k, total_steps, a: int, den):
  """b_k = floor(k M a / den)."""
  return (k * total_steps * a) // den


def blocks_started_by(r, num_blocks, total_steps, a: int, den):
  """#{k < n : b_k <= r} = min(n, ceil((r + 1) den / (M a))): every block whose start is at or
  before step r. Selecting all of them at once also covers duplicate starts (method 7.1)."""
  return jnp.minimum(num_blocks, ceil_div((r + 1) * den, jnp.maximum(total_steps * a, 1)))


def sequential_plan(num_blocks: int, steps_per_patch: int, overlap: float) -> Plan:
  """The plan of method 3.1 for n = num_blocks, in exact integer arithmetic."""
  check_steps_per_patch(steps_per_patch)
  if int(num_blocks) != num_blocks or num_blocks < 0:
    raise ValueError(f"num_blocks must be an integer >= 0, got {num_blocks}")
  a, b = overlap_fraction(overlap)
  m, lc, den = plan_ints(int(num_blocks), int(steps_per_patch), a, b)
  starts = tuple(block_start(k, m, a, den) for k in range(num_blocks))
  return Plan(int(num_blocks), m, lc, starts)


def noise_level(r, start, known, proto_len, total_steps):
  """Closed-form t of every region at step r (method 3.2), f32[R].

  1 until the region's start step, then (Lc - (r - start)) / Lc down to 0 (the pasted prototype
  pi[i] = (Lc - i) / Lc), 0 afterwards; known regions and every region at r >= M are 0.
  start i32[R], known bool[R]; r, proto_len, total_steps i32 scalars (one sample).
  """
  chex.assert_equal_shape([start, known])
  chex.assert_type([start, known], [int, bool])
  chex.assert_rank([r, proto_len, total_steps], 0)
  elapsed = r - start
  frac = (proto_len - elapsed).astype(jnp.float32) / jnp.asarray(proto_len, jnp.float32)
  t = jnp.where(elapsed <= 0, 1.0, jnp.clip(frac, 0.0, 1.0))
  return jnp.where(known | (r >= total_steps), 0.0, t)


def matched_steps_per_patch(budget: int, num_blocks: int, overlap: float) -> int:
  """Steps per patch whose plan (n = num_blocks, this overlap) costs the NFE closest to
  `budget` (ties: fewer steps): the compute-matched single pass of an IPR budget. With overlap
  the cost per extra step is 1 + (n - 1)(1 - overlap), so this is not simply budget / n."""
  if int(budget) != budget or budget < 1:
    raise ValueError(f"budget must be an integer >= 1, got {budget}")
  if int(num_blocks) != num_blocks or num_blocks < 1:
    raise ValueError(f"num_blocks must be an integer >= 1, got {num_blocks}")
  a, b = overlap_fraction(overlap)
  cost = lambda s: plan_ints(int(num_blocks), s, a, b)[0]
  s = 1
  while cost(s + 1) <= budget:
    s += 1
  return s + 1 if abs(cost(s + 1) - budget) < abs(cost(s) - budget) else s
