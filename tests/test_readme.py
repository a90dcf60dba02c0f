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


def test_readme_example_runs():
  code = _blocks("python")[0]
  scope: dict = {}
  exec(compile(code, "README.md", "exec"), scope)
  assert int(scope["state"].step) == 3
