"""The README's Python example runs as printed, and prints what its comment says."""
import contextlib
import io
import os
import re
import unittest

from helpers import Scratch

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


class ReadmeExample(unittest.TestCase):
    def test_python_quick_start_runs(self):
        with open(README) as f:
            text = f.read()
        section = text[text.index("## Python"):]
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        printed_comment = re.search(r"^print\(.*?\)\s+# (.*)$", code, re.M).group(1)
        scratch = Scratch(self)
        cwd = os.getcwd()
        os.chdir(scratch.dir)
        self.addCleanup(os.chdir, cwd)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        self.assertEqual(out.getvalue().strip(), printed_comment)
        self.assertTrue(os.path.exists(os.path.join(scratch.dir, "w.safetensors")))

    def test_pytorch_quick_start_runs(self):
        try:
            import torch  # noqa: F401
        except ImportError as e:
            self.skipTest(f"PyTorch cannot be imported ({e}); install python3-torch")
        with open(README) as f:
            text = f.read()
        section = text[text.index("### PyTorch"):]
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        printed_comment = re.search(r"^print\(.*?\)\s+# (.*)$", code, re.M).group(1)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        self.assertEqual(out.getvalue().strip(), printed_comment)

    def test_pytorch_gpu_example_runs_after_the_quick_start(self):
        try:
            import torch

            import mxkit.torch as mxt
        except ImportError as e:
            self.skipTest(f"PyTorch cannot be imported ({e}); install python3-torch")
        if not torch.cuda.is_available() or not mxt.CUDA_KERNELS:
            self.skipTest("needs a CUDA device and a module built with CUDA")
        with open(README) as f:
            text = f.read()
        section = text[text.index("### PyTorch"):]
        quick_start, gpu = re.findall(r"```python\n(.*?)```", section, re.S)[:2]
        names = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(quick_start, "README.md", "exec"), names)
        exec(compile(gpu, "README.md", "exec"), names)
        self.assertEqual(names["y"].device.type, "cuda")
        self.assertEqual(names["q"].packed.device.type, "cuda")


if __name__ == "__main__":
    unittest.main()
