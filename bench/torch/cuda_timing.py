"""What the PyTorch benchmarks share: the median time of a CUDA call from CUDA events, and the
CPU's time per call."""
import time

import torch


def median_ms(fn, reps=20, calls=1, warmup=3):
    """Milliseconds per call of fn: the median over `reps` samples, each timing `calls` calls in
    a row (more than one keeps the GPU's queue full, hiding Python's time per call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / calls)
    return sorted(times)[len(times) // 2]


def graph_median_ms(fn, reps=20, calls=10):
    """Milliseconds per call of fn replayed from a CUDA graph of `calls` calls, as decoding loops
    run (torch.compile's "reduce-overhead"): the GPU's time without Python's."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return median_ms(graph.replay, reps=reps) / calls


def host_us_per_call(fn, calls=200):
    """Microseconds of the CPU's time per call of fn, the calls issued back to back without
    waiting for the GPU (below the GPU's time per call, Python's work hides behind the GPU's)."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6
