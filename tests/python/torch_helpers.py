"""What the PyTorch tests share: torch and mxkit.torch, or why they cannot be imported."""
import unittest

try:
    import torch

    import mxkit.torch as mxt

    WHY = None
except ImportError as e:
    torch = mxt = None
    WHY = f"PyTorch cannot be imported ({e}); install python3-torch"


def requires_torch(cls):
    """Skips the test class, with the reason, where PyTorch cannot be imported."""
    return unittest.skipIf(WHY is not None, WHY or "")(cls)
