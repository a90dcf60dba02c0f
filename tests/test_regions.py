import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import regions


@pytest.mark.parametrize("h,w,p,c", [(9, 9, 1, 9), (32, 32, 4, 3), (12, 8, 4, 1)])
def test_patchify_roundtrip_and_order(h, w, p, c):
  grid = regions.make_grid(h, w, p)
  x = jax.random.normal(jax.random.key(0), (2, h, w, c))
  patches = regions.patchify(x, grid)
  assert patches.shape == (2, grid.num_regions, p * p * c)
  np.testing.assert_array_equal(regions.unpatchify(patches, grid), x)
  # region j = (j // gw, j % gw) in row-major order
  j = grid.num_regions - 1 if grid.num_regions > 1 else 0
  r, q = divmod(j, grid.grid_w)
  np.testing.assert_array_equal(
    patches[1, j], x[1, r * p : (r + 1) * p, q * p : (q + 1) * p].ravel()
  )


def test_to_pixels_is_kron_and_region_mean_inverts():
  grid = regions.make_grid(8, 12, 4)
  v = jnp.arange(6.0).reshape(1, 6)
  pix = regions.to_pixels(v, grid)[0, ..., 0]
  np.testing.assert_array_equal(pix, np.kron(np.arange(6.0).reshape(2, 3), np.ones((4, 4))))
  np.testing.assert_array_equal(regions.region_mean(pix[None, ..., None], grid), v)


def test_impose_known():
  grid = regions.make_grid(4, 4, 2)
  z = jnp.zeros((1, 4, 4, 1))
  vals = jnp.ones((1, 4, 4, 1))
  known = jnp.array([[True, False, False, True]])
  out = regions.impose_known(z, known, vals, grid)[0, ..., 0]
  np.testing.assert_array_equal(out, np.kron([[1, 0], [0, 1]], np.ones((2, 2))))


def test_bad_grid():
  with pytest.raises(ValueError, match="patch=5"):
    regions.make_grid(32, 32, 5)
  with pytest.raises(ValueError, match="patch"):
    regions.make_grid(32, 32, 0)
