import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import schedules

SHIPPED = [(3, 0.0), (10, 0.8), (30, 0.9), (10, 0.9)]  # method 6.3 (steps_per_patch, overlap)


def spec_plan(n, ps, ov):
  """Spec 3.1 formulas on exact rationals."""
  q = 1 - Fraction(str(ov))
  m = math.ceil(ps + (n - 1) * q * ps)
  L = Fraction(m) / ((n - 1) * q + 1)
  return m, math.ceil(L), [math.floor(k * L * q) for k in range(n)]


@pytest.mark.parametrize("ps,ov", SHIPPED)
def test_shipped_plans_are_integer_formulas(ps, ov):
  d = round(ps * (1 - ov))
  for n in range(1, 257):
    plan = schedules.sequential_plan(n, ps, ov)
    assert plan.total_steps == ps + (n - 1) * d
    assert plan.block_starts == tuple(k * d for k in range(n))
    assert plan.proto_len == ps
    assert (plan.total_steps, plan.proto_len, list(plan.block_starts)) == spec_plan(n, ps, ov)


@pytest.mark.parametrize("ps,ov", [(5, 0.5), (7, 0.75), (1, 0.5), (4, 0.3)])
def test_fractional_plans_match_spec(ps, ov):
  for n in range(1, 120):
    plan = schedules.sequential_plan(n, ps, ov)
    assert (plan.total_steps, plan.proto_len, list(plan.block_starts)) == spec_plan(n, ps, ov)


def test_traced_plan_matches_python():
  a, b = schedules.overlap_fraction(0.8)
  n = jnp.arange(0, 82)
  m, lc, den = schedules.plan_ints(n, 10, a, b)
  for i in range(1, 82):
    p = schedules.sequential_plan(i, 10, 0.8)
    assert int(m[i]) == p.total_steps and int(lc[i]) == p.proto_len
    got = [int(schedules.block_start(k, m[i], a, den[i])) for k in range(i)]
    assert tuple(got) == p.block_starts
  assert int(m[0]) == 0


def reference_matrix(known, order, ps, ov):
  """Spec 3.2 schedule matrix [M+1, R] built with the reference's plain loop."""
  n = len(order)
  plan = schedules.sequential_plan(n, ps, ov)
  m, lc = plan.total_steps, plan.proto_len
  T = np.tile(np.where(known, 0.0, 1.0).astype(np.float32), (m + 1, 1))
  proto = np.array([(lc - i) / lc for i in range(lc)], np.float32)
  for k, b in enumerate(plan.block_starts):
    j = order[k]
    for i in range(min(lc, m - b)):
      T[b + i, j] = min(proto[i], T[b + i, j])
    T[b + lc : m, j] = 0.0
    T[m] = 0.0
  return T, plan


@pytest.mark.parametrize("ps,ov", SHIPPED + [(5, 0.5), (4, 0.3)])
def test_closed_form_equals_reference_matrix(ps, ov):
  rng = np.random.default_rng(0)
  r = 20
  known = rng.random(r) < 0.3
  order = rng.permutation(np.flatnonzero(~known))
  T, plan = reference_matrix(known, order, ps, ov)
  start = np.full(r, schedules.NEVER, np.int32)
  start[order] = plan.block_starts
  for step in range(plan.total_steps + 1):
    # before a region's start the closed form reads NEVER, exactly like the matrix's 1s
    cur = np.where(start <= step, start, schedules.NEVER)
    t = schedules.noise_level(
      step, jnp.asarray(cur), jnp.asarray(known), plan.proto_len, plan.total_steps
    )
    # equal up to 1 ulp: XLA:CPU's float32 division is not correctly rounded (9/10 is 1 ulp off)
    np.testing.assert_array_max_ulp(np.asarray(t), T[step], maxulp=1)
    np.testing.assert_array_equal(np.asarray(t) == 1, T[step] == 1, err_msg=f"step {step}")
    np.testing.assert_array_equal(np.asarray(t) == 0, T[step] == 0, err_msg=f"step {step}")


def test_bad_input():
  with pytest.raises(ValueError, match="overlap"):
    schedules.sequential_plan(5, 3, 1.0)
  with pytest.raises(ValueError, match="overlap"):
    schedules.sequential_plan(5, 3, -0.1)
  with pytest.raises(ValueError, match="steps_per_patch"):
    schedules.sequential_plan(5, 0, 0.5)
  with pytest.raises(ValueError, match="num_blocks"):
    schedules.sequential_plan(-1, 3, 0.5)
