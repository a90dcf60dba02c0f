"""The library's layering, read from the source (module-level and function-level imports alike):
benchmark code (data, evaluators, TFDS builders) and the weights store sit below the model and
algorithm modules; nothing in ipr_jax imports the experiments."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "ipr_jax"
ALGORITHM = {"ipr_jax.refine", "ipr_jax.sampling", "ipr_jax.chains", "ipr_jax.pretrained"}


def _imports(path: pathlib.Path) -> set:
  """Every module `path` imports, as dotted names (`from ipr_jax import x` gives ipr_jax.x)."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return out


def test_benchmark_code_does_not_import_the_algorithm():
  below = [*(ROOT / "evaluation").glob("*.py"), *(ROOT / "data").glob("*.py")]
  below += [ROOT / "tfds_builders.py", ROOT / "weights.py", ROOT / "structs.py"]
  for path in below:
    bad = sorted(_imports(path) & ALGORITHM)
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_the_library_never_imports_the_experiments():
  for path in ROOT.rglob("*.py"):
    bad = sorted(m for m in _imports(path) if m.split(".")[0] == "experiments")
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"
