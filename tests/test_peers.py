"""Same maths as the field's packages (marker `peers`; `pip install -e ".[peers]"`): our jnp
evaluators against srmbench's on the same boards and images. Skipped, with the reason, when the
optional extra is absent. No code of the peers is copied: they are imported and called."""

import numpy as np
import pytest

from ipr_jax.data import even_pixels, sudoku
from ipr_jax.evaluation import even_pixels as even_eval
from ipr_jax.evaluation import sudoku as sudoku_eval

pytestmark = pytest.mark.peers
torch = pytest.importorskip("torch", reason='the peers extra is absent: pip install -e ".[peers]"')
evaluations = pytest.importorskip(
  "srmbench.evaluations", reason='the peers extra is absent: pip install -e ".[peers]"'
)


def _boards(num: int, seed: int = 0) -> np.ndarray:
  """Held-out solved boards, a third left valid, the rest with 1-6 cells changed."""
  rng = np.random.default_rng(seed)
  boards = sudoku.test_boards()[:num].astype(np.int64).copy()
  for b in boards[num // 3 :]:
    cells = rng.choice(81, int(rng.integers(1, 7)), replace=False)
    b.reshape(81)[cells] = rng.integers(1, 10, len(cells))
  return boards


def test_sudoku_duplicates_and_validity_per_board_equal_srmbench():
  """srmbench's Sudoku metric (the part after its digit classifier, which it downloads from the
  Hugging Face hub and so cannot run offline) against ours, board by board."""
  boards = _boards(60)
  peer = object.__new__(evaluations.MnistSudokuEvaluation)  # no classifier download
  got = peer._get_sudoku_metrics(torch.as_tensor(boards))
  ours = sudoku_eval.duplicate_count(boards.astype(np.int32))
  np.testing.assert_array_equal(got["duplicate_count"].numpy(), np.asarray(ours))
  np.testing.assert_array_equal(
    got["is_valid_sudoku"].numpy(), np.asarray(sudoku_eval.is_valid(boards.astype(np.int32)))
  )
  assert 0 < got["is_valid_sudoku"].sum() < len(boards)  # both verdicts occur


def test_even_pixels_per_image_equal_srmbench():
  """srmbench's Even Pixels evaluator on one image at a time (it returns batch means) against
  our per-image jnp metrics: the training images (even by construction) and recoloured ones."""
  rng = np.random.default_rng(1)
  images = [even_pixels.item(i, "test").copy() for i in range(12)]
  for img in images[6:]:  # recolour a random block to the first pixel's colour: uneven
    r, c = rng.integers(0, 24, 2)
    img[r : r + 8, c : c + 8] = img[0, 0]
  x = np.stack([im.astype(np.float32) / 127.5 - 1.0 for im in images])  # [-1, 1], HWC
  peer = evaluations.EvenPixelsEvaluation()
  ours = even_eval.metrics(x)
  for i in range(len(x)):
    got = peer.evaluate(torch.as_tensor(x[i : i + 1]).permute(0, 3, 1, 2))
    for name in ("color_imbalance_count", "is_color_count_even"):
      assert float(got[name]) == float(ours[name][i]), (i, name)
    for name in ("saturation_std", "value_std"):
      np.testing.assert_allclose(float(got[name]), float(ours[name][i]), rtol=1e-4, atol=1e-6)
  assert 0 < float(np.sum(ours["is_color_count_even"])) < len(x)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.0), (1.0, 0.7)])
def test_reverse_step_equals_spatialreasoners(variance, alpha, temperature):
  """One reverse step of the rectified-flow kernel: spatialreasoners' RectifiedFlow
  (velocity parameterisation "ut") against `flow.reverse_kernel` / `reverse_step` with the same
  noise, per element, t > s and the edges s = 0 and t = s excluded by the peer's own masks."""
  import jax
  import jax.numpy as jnp

  from ipr_jax import flow

  flows = pytest.importorskip("spatialreasoners.denoising_model.flow")
  rng = np.random.default_rng(3)
  shape = (4, 6, 6, 3)
  z, u, noise = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
  v = rng.uniform(0.05, 0.95, shape).astype(np.float32)
  t = rng.uniform(0.2, 0.95, shape).astype(np.float32)
  s = (t * rng.uniform(0.3, 0.9, shape)).astype(np.float32)
  peer = flows.RectifiedFlow(flows.RectifiedFlowCfg(variance=variance), "ut")
  as_t = lambda a: torch.as_tensor(a.copy())
  got = peer.conditional_p_ut(
    mean_theta=as_t(u),
    z_t=as_t(z),
    t=as_t(t),
    t_star=as_t(s),
    alpha=alpha,
    temperature=temperature,
    v_theta=as_t(v),
  )
  mean, std = flow.reverse_kernel(
    z, t, s, u, v, alpha=alpha, temperature=temperature, variance=variance
  )
  np.testing.assert_allclose(np.asarray(mean), got.mean.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(std), got.var.sqrt().numpy(), rtol=1e-5, atol=1e-6)
  step = flow.reverse_step(
    jax.random.key(0),
    z,
    t,
    s,
    u,
    v,
    alpha=alpha,
    temperature=temperature,
    variance=variance,
    noise=jnp.asarray(noise),
  )
  expected = got.mean + got.var.sqrt() * as_t(noise)
  np.testing.assert_allclose(np.asarray(step), expected.numpy(), rtol=1e-5, atol=1e-5)
