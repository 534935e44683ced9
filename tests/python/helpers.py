"""What the tests share: the `mx` command (path in $MX), .npy files it reads, and test arrays."""
import os
import subprocess
import tempfile

import numpy as np

MX = os.environ["MX"]
SCALES = ["floor", "ceil", "even", "rceil"]
ROUNDINGS = ["nearest-even", "nearest-away", "toward-zero", "stochastic"]


class Scratch:
    """A temporary folder, removed with the test."""

    def __init__(self, test):
        d = tempfile.TemporaryDirectory()
        test.addCleanup(d.cleanup)
        self.dir = d.name

    def path(self, name):
        return os.path.join(self.dir, name)


def mx(*args):
    """Runs `mx ARGS`; returns (exit status, stderr)."""
    p = subprocess.run([MX, *args], capture_output=True, text=True)
    return p.returncode, p.stderr


def mx_ok(*args):
    rc, err = mx(*args)
    if rc != 0:
        raise AssertionError(f"mx {' '.join(args)} exited {rc}: {err}")


def mx_error(*args):
    """The one-line message of a failing `mx` command, without its "mx CMD: error: " prefix."""
    rc, err = mx(*args)
    assert rc == 2, f"mx {' '.join(args)} exited {rc}: {err}"
    lines = err.strip().split("\n")
    assert len(lines) == 1, err
    return lines[0].split(": error: ", 1)[1]


def save_bfloat16_npy(path, bits):
    """A .npy of bfloat16 values as ml_dtypes writes it (descr '<V2'), from uint16 bit patterns."""
    header = {"descr": "<V2", "fortran_order": False, "shape": bits.shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.ascontiguousarray(bits, dtype="<u2").tobytes())


def cast(scratch, x, emit, *flags, bfloat16=False):
    """What `mx cast --emit EMIT FLAGS` makes of x, as a numpy array."""
    src, out = scratch.path("in.npy"), scratch.path("out.npy")
    if bfloat16:
        save_bfloat16_npy(src, x)
    else:
        np.save(src, x)
    mx_ok("cast", "--quiet", src, "-o", out, "--emit", emit, *flags)
    return np.load(out)


def varied(rows=8, cols=80, seed=1):
    """float32 values that reach every branch of a quantizer: per-row magnitudes from 2^-30 to
    2^30, a zero block, NaN and ±Inf, subnormals, ties of the element grids, values near the
    float32 maximum, and a last block (cols not a multiple of 32) that is mostly padding."""
    assert rows >= 6 and cols >= 8
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * 2.0 ** rng.integers(-30, 30, size=(rows, 1))
    x[0, :32] = 0
    x[1, 3] = np.nan
    x[2, 5], x[2, cols - 1] = np.inf, -np.inf
    x[3, :6] = [1e-40, -3e-42, 1.4e-45, 5e-39, -1e-45, 2e-44]
    x[4, :] = rng.integers(-64, 64, size=cols) / 8.0  # many exact ties
    x[5, :8] = [3.4e38, -3.3e38, 1e38, 2.0**127, -(2.0**126), 1.0, 0.5, 0.0]
    return x.astype(np.float32)


def half(x):
    """x as float16, values beyond its range becoming ±Inf without a warning."""
    with np.errstate(over="ignore"):
        return x.astype(np.float16)


def bits(a):
    """Bit patterns of a float array, so that NaNs and signed zeros compare exactly."""
    a = np.asarray(a)
    return a.view({4: np.uint32, 2: np.uint16}[a.dtype.itemsize])
