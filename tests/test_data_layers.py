"""The data floor stands alone: importing any data module loads nothing from the floors above it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABOVE = ("lab", "gans", "classifier", "metrics", "pages", "streamlit")

CHECK = f"""
import pkgutil, importlib, sys
import data
for module in pkgutil.iter_modules(data.__path__):
    importlib.import_module("data." + module.name)
above = sorted({{name for name in sys.modules if name.split(".")[0] in {ABOVE!r}}})
print(" ".join(above))
"""


def test_importing_every_data_module_loads_no_module_of_a_floor_above():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []
