"""Runs the tests of the Python module (tests/python/test_*.py) under unittest.

ctest runs this with PYTHONPATH pointing at the built module and MX at the built `mx` command.
Without numpy there is nothing to test: exit status 77, which ctest reports as a skip.
"""
import os
import sys
import unittest

try:
    import numpy  # noqa: F401
except ImportError as e:
    print(f"SKIP: {sys.executable} cannot import numpy ({e}); install python3-numpy")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py", top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
