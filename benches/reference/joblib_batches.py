"""What a batch costs in joblib's loky backend, beside `cargo bench --bench parallel --
"one-task batches"`: runs of 1000 and 5000 one-task batches (`batch_size=1`) of a trivial
task on 2 workers; the difference over 4000 is the time a batch adds. The pool is started
before timing (loky keeps it between calls), as joblet's is not: joblet's figures include
starting its workers, which the difference cancels.

    python3 benches/reference/joblib_batches.py
"""

import statistics
import time

from joblib import Parallel, delayed


def identity(i):
    return i


def run(n):
    return Parallel(n_jobs=2, backend="loky", batch_size=1)(delayed(identity)(i) for i in range(n))


def median_of(n, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = run(n)
        times.append(time.perf_counter() - t0)
        assert out[-1] == n - 1
    return statistics.median(times)


def main():
    run(8)  # starts the workers
    small, large = median_of(1000), median_of(5000)
    print(f"loky, 1000 batches: {small * 1e3:.1f} ms; 5000 batches: {large * 1e3:.1f} ms; "
          f"a batch adds {(large - small) / 4000 * 1e6:.1f} us")


if __name__ == "__main__":
    main()
