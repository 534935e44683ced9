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


if __name__ == "__main__":
    unittest.main()
