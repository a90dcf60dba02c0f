import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


DOCS = [os.path.join(os.path.dirname(README), "docs", "published_checkpoints.md")]


def _blocks(lang, paths=(README,)):
  return [b for p in paths for b in re.findall(rf"```{lang}\n(.*?)```", open(p).read(), re.S)]


def test_readme_commands_present():
  bash = "\n".join(_blocks("bash"))
  assert 'pip install -e ".[test]"' in bash
  assert "python -m pytest -q tests" in bash
  ci = open(os.path.join(os.path.dirname(README), ".ci", "run")).read()
  assert "python -m pytest -q tests" in ci


def test_readme_python_blocks_run_in_a_fresh_process():
  """Every Python block, as written, each in its own fresh interpreter with XLA's default
  compile options, as a user runs it (all started at once: their imports and compiles overlap
  on the cores)."""
  import subprocess
  import sys

  assert len(_blocks("python")) >= 3
  blocks = _blocks("python", (README, *DOCS))  # and the docs' examples that README points to
  root = os.path.dirname(README)
  env = {k: v for k, v in os.environ.items() if k != "JAX_DISABLE_MOST_OPTIMIZATIONS"}
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", code],
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      cwd=root,
      env=env,
    )
    for code in blocks
  ]
  for i, (code, proc) in enumerate(zip(blocks, procs)):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"README Python block {i + 1} failed:\n{code}\n{err[-3000:]}"
