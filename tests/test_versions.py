"""setup.cfg's lower bounds are the versions CI tests in its lowest-version venv."""

import configparser
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _release(version: str) -> tuple:
  """'0.12' and '0.12.0' alike: (0, 12, 0)."""
  parts = tuple(int(p) for p in version.split("."))
  return parts + (0,) * (3 - len(parts))


def test_lowest_versions_file_matches_setup_cfg_lower_bounds():
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(ROOT, "setup.cfg"))
  lower = {}
  for line in cfg["options"]["install_requires"].strip().splitlines():
    m = re.match(r"\s*([A-Za-z0-9_.-]+)>=([0-9.]+)", line)
    if m:
      lower[m.group(1).lower()] = m.group(2)
  pins = {}
  for line in open(os.path.join(ROOT, ".ci", "lowest-versions.txt")):
    line = line.split("#")[0].strip()
    if line:
      name, version = line.split("==")
      pins[name.lower()] = version
  assert pins, "no pins"
  for name, version in pins.items():
    if name == "jaxlib":
      assert version == pins["jax"]
      continue
    assert _release(version) == _release(lower[name]), (name, version, lower[name])
