import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks(lang):
  return re.findall(rf"```{lang}\n(.*?)```", open(README).read(), re.S)


def test_readme_commands_present():
  bash = "\n".join(_blocks("bash"))
  assert 'pip install -e ".[test]"' in bash
  assert "python -m pytest -q tests" in bash
  ci = open(os.path.join(os.path.dirname(README), ".ci", "run")).read()
  assert "python -m pytest -q tests" in ci


def test_readme_python_blocks_run_in_a_fresh_process():
  """Every Python block, as written, each in its own fresh interpreter."""
  import subprocess
  import sys
  blocks = _blocks("python")
  assert len(blocks) >= 3
  root = os.path.dirname(README)
  for i, code in enumerate(blocks):
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=root)
    assert res.returncode == 0, f"README Python block {i + 1} failed:\n{code}\n{res.stderr[-3000:]}"
