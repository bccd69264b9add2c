"""joblet with Polars beside joblib with pandas, on the same cached feature-engineering step
(`examples/frames.rs`): a frame of ROWS rows x 3 columns (id: int64, x and w: float64) in,
the same with two derived columns out. Each round is a fresh process per contender, in
alternating order; each reports the first hit of its process (hash + load), the median of 5
warm hits, and the median of 5 hashings of the argument. The table gives each contender's
median over the rounds, its range, and the ratio (joblib's time over joblet's).

    pip install joblib pandas pyarrow
    cargo build --release --features polars --example frames
    python3 benches/reference/frames.py [--rows 1000000] [--rounds 7]

The binary is looked for under $CARGO_TARGET_DIR (else target/). This script also runs the
Python rounds: `frames.py --round ROWS DIR` and `frames.py --prepare ROWS DIR`.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def raw(rows):
    import numpy as np, pandas as pd
    i = np.arange(rows, dtype=np.int64)
    return pd.DataFrame({"id": i, "x": np.sin(i * 0.001), "w": 1.0 + (i % 97) / 97.0})


def cached_features(location):
    import joblib

    def features(raw):
        out = raw.copy()
        out["x_weighted"] = raw["x"] * raw["w"]
        out["x_centered"] = raw["x"] - raw["x"].mean()
        return out

    return joblib.Memory(location, verbose=0).cache(features)


def python_round(rows, location):
    import joblib
    frame = raw(rows)
    features = cached_features(location)
    t = time.perf_counter()
    features(frame)
    first = time.perf_counter() - t
    warm, hashes = [], []
    for _ in range(5):
        t = time.perf_counter()
        features(frame)
        warm.append(time.perf_counter() - t)
    for _ in range(5):
        t = time.perf_counter()
        joblib.hash(frame)
        hashes.append(time.perf_counter() - t)
    ms = lambda s: s * 1e3
    print(f"{ms(statistics.median(hashes)):.4f} {ms(first):.4f} {ms(statistics.median(warm)):.4f}")


def binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(target, "release", "examples", "frames")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: cargo build --release --features polars --example frames")
    return path


def numbers(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def main():
    if len(sys.argv) == 4 and sys.argv[1] in ("--round", "--prepare"):
        rows, location = int(sys.argv[2]), sys.argv[3]
        if sys.argv[1] == "--round":
            python_round(rows, location)
        else:
            cached_features(location)(raw(rows))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import joblib, pandas
    tmp = tempfile.mkdtemp(prefix="joblet-frames-")
    commands = {
        "joblet": [binary()],
        "joblib": [sys.executable, os.path.abspath(__file__)],
    }
    dirs = {name: os.path.join(tmp, name) for name in commands}
    for name, cmd in commands.items():
        subprocess.run(cmd + ["--prepare", str(args.rows), dirs[name]], check=True)
    results = {name: [] for name in commands}
    order = list(commands)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            results[name].append(numbers(commands[name] + ["--round", str(args.rows), dirs[name]]))
    shutil.rmtree(tmp)

    print(f"{args.rows:,} rows x 3 columns; joblib {joblib.__version__}, pandas "
          f"{pandas.__version__}; {args.rounds} rounds, a fresh process per contender each, "
          f"milliseconds: median (range)")
    print("| | joblet + Polars | joblib + pandas | ratio |")
    print("| --- | --- | --- | --- |")
    labels = ["hashing the argument", "first hit in a fresh process", "warm hit (median of 5)"]
    for i, label in enumerate(labels):
        cells, medians = [], []
        for name in commands:
            values = [round_[i] for round_ in results[name]]
            m = statistics.median(values)
            medians.append(m)
            cells.append(f"{m:.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"| {label} | {cells[0]} | {cells[1]} | {medians[1] / medians[0]:.1f}x |")


if __name__ == "__main__":
    main()
