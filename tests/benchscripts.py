"""The scripts of bench/ as modules, for the tests that drive them (they are not a package)."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(script: str, module_name: str):
    """bench/<script>.py imported as `module_name` (registered in sys.modules, where dataclasses look
    up their annotations)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
