"""The long calls release the GIL, so other Python threads run meanwhile, and calls from
several threads at once give the same bytes as one after another."""
import sys
import threading
import time
import unittest

import numpy as np

import mxkit
from helpers import bits, varied


class Threads(unittest.TestCase):
    def test_quantize_and_fake_quantize_let_other_threads_run(self):
        x = np.random.default_rng(3).standard_normal(1 << 24, dtype=np.float32)
        count = [0]
        stop = threading.Event()

        def counter():
            while not stop.is_set():
                count[0] += 1
                if count[0] % 1000 == 0:
                    time.sleep(0)  # lets the main thread take the GIL back promptly

        old_interval = sys.getswitchinterval()
        # No preemption between bytecodes: the counter can only run while the main thread is
        # inside a call that released the GIL.
        sys.setswitchinterval(10.0)
        worker = threading.Thread(target=counter)
        worker.start()
        try:
            time.sleep(0.05)
            for call in (lambda: mxkit.quantize(x, "mxfp4_e2m1"),
                         lambda: mxkit.fake_quantize(x, "mxfp8_e4m3")):
                before = count[0]
                call()
                ran = count[0] - before
                self.assertGreater(ran, 100, "the counter thread did not run during the call")
        finally:
            stop.set()
            sys.setswitchinterval(old_interval)
            worker.join()

    def test_concurrent_calls_match_sequential_ones(self):
        inputs = [varied(rows=64, cols=4096, seed=s) for s in range(4)]
        want = [bits(mxkit.fake_quantize(v, "mxfp6_e3m2", round="stochastic", seed=9))
                for v in inputs]
        got = [None] * len(inputs)

        def work(i):
            got[i] = bits(mxkit.fake_quantize(inputs[i], "mxfp6_e3m2", round="stochastic", seed=9))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(len(inputs)):
            np.testing.assert_array_equal(got[i], want[i])


if __name__ == "__main__":
    unittest.main()
