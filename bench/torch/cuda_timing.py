"""What the PyTorch benchmarks share: the median time of a CUDA call, from CUDA events."""
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
