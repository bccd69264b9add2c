"""joblet beside its peers, one table from one run: the `cached` crate's disk store, joblib with
numpy, rayon by hand and a plain loop. The contenders of each workload alternate round by round,
each round a fresh process, and the table gives each one's median over the rounds, its range,
and the ratio (the peer's time over joblet's: above 1, joblet is faster).

    pip install joblib numpy lz4
    python3 benches/reference/compare.py [--rounds 7] [--only small-hit,tasks] [--cold]
        [--report N]

The Rust side is `benches/peers.rs`, built here with `cargo bench --no-run` (release). Before
each timed dump or load, both sides touch and free 240 MB (untimed), as joblib's own figures
were taken; `--cold` leaves that out. `--report N` also times `joblet report` on a folder of N
entries (made once, then kept in the system's temporary folder) and its peak memory: once with
no sums kept (every entry's header read), then again, from the sums the first one kept.

The trivial tasks take about 40 µs a run with both threads at work, and about 70 when the
machine leaves one thread to do most of it, for a few seconds at a time and for every
contender alike; each round runs them three times, alternating, so that the medians meet the
same mix of the two.

This script also runs the Python contenders' rounds: `compare.py --round WORKLOAD CONTENDER`.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
N80 = 10_000_000
BIG = 1_000_000

# workload: (what, [(contender, runner)], goal ratio, peer for the ratio)
WORKLOADS = {
    "small-hit": ("hit, `fn(u64) -> u64`", ["joblet", "cached", "joblib"], 1.0, "cached"),
    "small-store": ("miss + store, `fn(u64) -> u64`", ["joblet", "cached"], 1.0, "cached"),
    "small-store-sustained": ("miss + store, `fn(u64) -> u64`, writes waited for", ["joblet", "cached"], None, "cached"),
    "vec-hit": ("hit returning `Vec<f64>` of 1,000,000", ["joblet", "joblib"], 1.5, "joblib"),
    "dump-80mb": ("dump 80 MB `Vec<f64>`", ["joblet", "numpy", "write"], 1.0, "numpy"),
    "load-80mb": ("load 80 MB into a `Vec<f64>`", ["joblet", "numpy"], 1.0, "numpy"),
    "load-80mb-lz4": ("load 80 MB LZ4 as `Array<f64>`", ["joblet", "joblib"], 1.5, "joblib"),
    "tasks": ("100,000 trivial tasks, 2 threads", ["joblet", "rayon", "loop"], 0.9, "rayon"),
}
PYTHON = {"joblib", "numpy"}
# Runs of a workload in each round, alternating, where one run per round would let the
# contenders meet different states of the machine (see above); 1 for the rest.
REPEATS = {"tasks": 3}


# --- The Python contenders' rounds -------------------------------------------------------

def touch_and_free():
    import numpy as np
    a = np.empty(240 << 20, dtype=np.uint8)
    a.fill(0)
    del a


def timed(reps, run, setup=lambda: None):
    out = []
    for _ in range(reps):
        setup()
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return out


def python_round(workload, contender, cold):
    import numpy as np, joblib
    tmp = tempfile.mkdtemp(prefix="joblet-peers-py-")
    prepare = (lambda: None) if cold else touch_and_free
    try:
        if workload == "small-hit":
            mem = joblib.Memory(tmp, verbose=0)
            f = mem.cache(lambda x: x + 1)
            f(1)
            calls = 2000
            return [t / calls for t in timed(7, lambda: [f(1) for _ in range(calls)])]
        if workload == "vec-hit":
            mem = joblib.Memory(tmp, verbose=0)

            def vec_of(seed):
                return (np.arange(BIG, dtype=np.uint64) ^ np.uint64(seed)).astype(np.float64)

            f = mem.cache(vec_of)
            f(1)
            return timed(15, lambda: f(1))
        arr = np.random.default_rng(0).standard_normal(N80)
        path = os.path.join(tmp, "a")

        def warm_file(p):
            with open(p, "rb") as fh:
                fh.read()

        if workload == "dump-80mb":
            def setup():
                if os.path.exists(path + ".npy"):
                    os.unlink(path + ".npy")
                prepare()
            return timed(7, lambda: np.save(path + ".npy", arr), setup)
        if workload == "load-80mb":
            np.save(path + ".npy", arr)
            return timed(7, lambda: np.load(path + ".npy"), lambda: (warm_file(path + ".npy"), prepare()))
        if workload == "load-80mb-lz4":
            joblib.dump(arr, path + ".lz4", compress="lz4")
            return timed(7, lambda: joblib.load(path + ".lz4"), lambda: (warm_file(path + ".lz4"), prepare()))
        raise SystemExit(f"no Python contender for {workload}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- The driver --------------------------------------------------------------------------

def build_peers():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "peers", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "peers" and msg.get("executable"):
            return msg["executable"]
    raise SystemExit("cargo did not build benches/peers.rs")


def one_round(peers, workload, contender, cold):
    if contender in PYTHON:
        cmd = [sys.executable, __file__, "--round", workload, contender]
    else:
        cmd = [peers, workload, contender]
    if cold:
        cmd.append("--cold")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def fmt(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def report_round(entries):
    """Times `joblet report` on a folder of `entries` entries, with no sums kept, then again;
    returns (seconds, peak MB) of each."""
    folder = os.path.join(tempfile.gettempdir(), f"joblet-peers-report-{entries}")
    if not os.path.isdir(folder):
        subprocess.run(
            ["cargo", "run", "--release", "--example", "million_entries", "--", str(entries), "--keep"],
            cwd=ROOT, check=True, env=dict(os.environ, JOBLET_MILLION_DIR=folder),
        )
    exe = os.path.join(ROOT, "target", "release", "joblet")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "-p", "joblet-cli"], cwd=ROOT, check=True)
    # A shard folder's sum is kept once it has been left alone for 2 s.
    time.sleep(2.5)
    sums = os.path.join(folder, ".joblet-sums")
    if os.path.exists(sums):
        os.remove(sums)
    rounds = []
    for _ in range(2):
        start = time.perf_counter()
        proc = subprocess.Popen([exe, "report", "--dir", folder], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        if status != 0:
            raise SystemExit("joblet report failed")
        rounds.append((took, usage.ru_maxrss / 1024))
    return rounds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--round", nargs=2, metavar=("WORKLOAD", "CONTENDER"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--report", type=int, default=0, metavar="N")
    args = ap.parse_args()
    if args.round:
        t = sorted(python_round(*args.round, args.cold))
        print(json.dumps({"median": t[len(t) // 2], "min": t[0], "max": t[-1]}))
        return
    # `--rounds 0`: only the report, with `--report N`.
    only = [] if args.rounds == 0 else [w for w in args.only.split(",") if w] or list(WORKLOADS)
    peers = build_peers() if only else None
    times = {(w, c): [] for w in only for c in WORKLOADS[w][1]}
    for r in range(args.rounds):
        for w in only:
            contenders = WORKLOADS[w][1]
            repeat = REPEATS.get(w, 1)
            for k in range(repeat):
                # Alternate who goes first.
                order = contenders if (r * repeat + k) % 2 == 0 else contenders[::-1]
                for c in order:
                    times[(w, c)].append(one_round(peers, w, c, args.cold))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    print(f"{args.rounds} rounds, contenders alternating, medians [min–max] of the rounds' medians"
          + (" (cold memory)" if args.cold else ""))
    print()
    print("| workload | joblet | peer | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    for w in only:
        what, contenders, goal, peer = WORKLOADS[w]
        j = times[(w, "joblet")]
        for c in contenders[1:]:
            p = times[(w, c)]
            ratio = med(p) / med(j)
            mark = "" if c != peer or goal is None else (f"≥ {goal}" + (" ✓" if ratio >= goal else " ✗"))
            print(f"| {what} | {fmt(med(j))} [{fmt(min(j))}–{fmt(max(j))}] | {c} {fmt(med(p))} "
                  f"[{fmt(min(p))}–{fmt(max(p))}] | {ratio:.2f}x | {mark} |")
    if args.report:
        (first, first_mb), (again, mb) = report_round(args.report)
        print(f"| `joblet report` on {args.report:,} entries, no sums kept | {fmt(first)}, "
              f"{first_mb:.0f} MB peak | — | — |  |")
        mark = "✓" if again <= 1.0 and mb <= 100 else "✗"
        print(f"| `joblet report` on {args.report:,} entries, again | {fmt(again)}, {mb:.0f} MB peak "
              f"| — | — | ≤ 1 s, ≤ 100 MB {mark} |")


if __name__ == "__main__":
    main()
