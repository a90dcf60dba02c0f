import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import loader
from ipr_jax import tfds_builders
from ipr_jax.data import even_pixels, pipeline, sudoku

READ_BACK = textwrap.dedent("""
  import sys; sys.path.insert(0, {root!r})
  import numpy as np
  from ipr_jax import tfds_builders
  b = tfds_builders.{cls}({kwargs} data_dir={d!r})
  ds = b.as_data_source()
  item = ds["test"][1]
  assert int(item["index"]) == 1
  print(len(ds["train"]), len(ds["test"]), int(np.asarray(item["image"]).sum()),
        int((np.asarray(item.get("board", np.zeros(1))) * np.arange(1, 82).reshape(-1, 9)[:9]).sum()))
""")


def _prepare_and_read(cls, kwargs, tmp_path):
  b = getattr(tfds_builders, cls)(data_dir=str(tmp_path), **kwargs)
  b.download_and_prepare()
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  kw = "".join(f"{k}={v!r}, " for k, v in kwargs.items())
  res = subprocess.run(
    [sys.executable, "-c", READ_BACK.format(root=root, cls=cls, kwargs=kw, d=str(tmp_path))],
    capture_output=True,
    text=True,
    timeout=600,
    cwd=root,
  )
  assert res.returncode == 0, res.stderr[-2000:]
  return b, [int(v) for v in res.stdout.split()[-4:]]


def test_mnist_sudoku_symbolic_builder(tmp_path):
  b, (n_train, n_test, img_sum, board_sum) = _prepare_and_read(
    "MnistSudoku", {"config": "symbolic", "num_train": 6, "num_test": 4}, tmp_path
  )
  assert (n_train, n_test) == (6, 4)
  board = sudoku.test_boards()[1]
  assert board_sum == int((board * np.arange(1, 82).reshape(9, 9)).sum()) and img_sum == 81 * 255
  item = b.as_data_source()["test"][1]
  np.testing.assert_array_equal(item["givens_hard"], sudoku.test_givens(1, "hard"))
  # a prepared split trains through grain like the procedural streams
  stream = loader.SourceStream(b.as_data_source()["test"], 2, 0, pipeline.sudoku_transform())
  batch = next(loader.iterator(stream, 3))
  assert batch["x"].shape == (2, 9, 9, 9) and batch["x"].min() == -1 and batch["x"].max() == 1
  assert batch["mask"].shape == (2, 81)
  epoch = np.concatenate([stream.batch(0)["x"], stream.batch(1)["x"]])  # 4 items: one epoch
  np.testing.assert_array_equal(
    np.sort(epoch.reshape(4, -1), axis=0),
    np.sort(sudoku.to_symbolic(sudoku.test_boards(4)).reshape(4, -1), axis=0),
  )


def test_mnist_sudoku_sklearn_images(tmp_path):
  b, (n_train, n_test, _, _) = _prepare_and_read(
    "MnistSudoku", {"config": "sklearn", "num_train": 2, "num_test": 2}, tmp_path
  )
  img = np.asarray(b.as_data_source()["test"][0]["image"])
  assert img.shape == (72, 72, 1) and img.dtype == np.uint8


def test_even_pixels_builder(tmp_path):
  b, (n_train, n_test, img_sum, _) = _prepare_and_read(
    "EvenPixels", {"num_train": 3, "num_test": 2}, tmp_path
  )
  assert (n_train, n_test) == (3, 2)
  assert img_sum == int(even_pixels.item(1).sum())


def test_idx_dir_config_needs_a_folder(tmp_path):
  with pytest.raises(ValueError, match="idx_dir"):
    tfds_builders.MnistSudoku(config="idx_dir", data_dir=str(tmp_path)).download_and_prepare()


def test_source_stream_bad_batch():
  with pytest.raises(ValueError, match="batch_size"):
    loader.SourceStream([1, 2], 3, 0, lambda x: {"x": x})


def test_counting_polygons_builder(tmp_path):
  from ipr_jax.data import counting_polygons

  b, (n_train, n_test, img_sum, _) = _prepare_and_read(
    "CountingPolygons", {"config": "blank", "num_train": 2, "num_test": 3}, tmp_path
  )
  assert (n_train, n_test) == (2, 3)
  image, labels = counting_polygons.item(1, "test")
  assert img_sum == int(image.sum())
  item = b.as_data_source()["test"][2]
  assert int(item["num_polygons"]) == 3 == counting_polygons.item(2, "test")[1]["num_polygons"]
  assert int(item["numbers_label"]) == counting_polygons.pair_label(*item["numbers"])


def test_counting_polygons_folder_config(tmp_path):
  from PIL import Image
  from ipr_jax.data import counting_polygons

  with pytest.raises(ValueError, match="background_dir"):
    tfds_builders.CountingPolygons(
      config="folder", data_dir=str(tmp_path / "a")
    ).download_and_prepare()
  folder = tmp_path / "bg"
  folder.mkdir()
  Image.fromarray(np.full((200, 150, 3), (20, 200, 40), np.uint8)).save(folder / "0.png")
  b = tfds_builders.CountingPolygons(
    config="folder",
    background_dir=str(folder),
    num_train=1,
    num_test=1,
    data_dir=str(tmp_path / "b"),
  )
  b.download_and_prepare()
  img = np.asarray(b.as_data_source()["test"][0]["image"])
  assert (img[0, 0] == (20, 200, 40)).all()  # a corner shows the (resized, cropped) background
  assert len(counting_polygons.Backgrounds(str(folder))) == 1


def test_size_is_part_of_the_fingerprint_and_tfds_builder_works(tmp_path):
  """Rebuilding with another size in the same data_dir is another dataset, never the cached
  one; `tfds.builder(name, config=..., sizes...)` reaches our builders once they are imported."""
  import tensorflow_datasets as tfds

  d = str(tmp_path)
  small = tfds.builder("mnist_sudoku", config="symbolic", num_train=0, num_test=2, data_dir=d)
  small.download_and_prepare()
  big = tfds_builders.MnistSudoku(config="symbolic", num_train=0, num_test=5, data_dir=d)
  big.download_and_prepare()
  assert small.info.full_name != big.info.full_name
  assert small.info.full_name == "mnist_sudoku/symbolic_train0_test2/1.0.0"
  assert len(small.as_data_source()["test"]) == 2 and len(big.as_data_source()["test"]) == 5
  assert "train" not in big.as_data_source()  # a size-0 split is not written
  np.testing.assert_array_equal(
    big.as_data_source()["test"][1]["board"], small.as_data_source()["test"][1]["board"]
  )
  with pytest.raises(ValueError, match="config must be one of"):
    tfds_builders.MnistSudoku(config="nope", data_dir=d)
  with pytest.raises(ValueError, match="num_test"):
    tfds_builders.EvenPixels(num_test=-1, data_dir=d)
