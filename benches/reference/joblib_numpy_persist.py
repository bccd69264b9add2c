"""numpy's np.save/np.load and joblib's dump/load on the 80 MB float64 array of
`cargo bench --bench persist`, measured the way ../shared/joblib-baseline/bench_persist.py
measures (same prewarm, warm page cache, the file removed before each dump), for side-by-side
figures. Needs numpy, joblib and lz4; run from anywhere:

    python3 benches/reference/joblib_numpy_persist.py [path to joblib-baseline]
"""
import os, sys, tempfile, shutil
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/joblib-baseline"))
import numpy as np, joblib
from _common import measured_runs
from bench_persist import prewarm_memory, warm_file_cache
N = 10_000_000
arr = np.random.default_rng(0).standard_normal(N)
tmp = tempfile.mkdtemp(dir="/tmp")
def med(r): return r["wall_s"]["median"]
out = {}
def dump_setup(p):
    def f():
        if os.path.exists(p): os.unlink(p)
        prewarm_memory()
    return f
def load_setup(p):
    def f():
        warm_file_cache(p); prewarm_memory()
    return f
npy = os.path.join(tmp, "a.npy"); pkl = os.path.join(tmp, "a.pkl"); lz = os.path.join(tmp, "a.lz4")
out["np.save"] = med(measured_runs(lambda: np.save(npy, arr), 7, setup=dump_setup(npy)))
out["np.load"] = med(measured_runs(lambda: np.load(npy), 7, setup=load_setup(npy)))
out["joblib.dump"] = med(measured_runs(lambda: joblib.dump(arr, pkl), 7, setup=dump_setup(pkl)))
out["joblib.load"] = med(measured_runs(lambda: joblib.load(pkl), 7, setup=load_setup(pkl)))
out["joblib.load mmap r"] = med(measured_runs(lambda: joblib.load(pkl, mmap_mode="r"), 7, setup=load_setup(pkl)))
out["joblib.dump lz4"] = med(measured_runs(lambda: joblib.dump(arr, lz, compress="lz4"), 5, setup=dump_setup(lz)))
out["joblib.load lz4"] = med(measured_runs(lambda: joblib.load(lz), 5, setup=load_setup(lz)))
for k, v in out.items(): print(f"{k:22s} {v*1e3:8.2f} ms")
shutil.rmtree(tmp)
