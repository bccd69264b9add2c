"""What `#[cached]` adds to a crate's build time, reading what each function reaches included.

A crate of about 20,000 lines (20 module files of everyday code: a derived struct and enum, a
trait and its impl, helpers that call each other with iterators, closures and strings; ten
functions in main.rs that each reach a module's worth of helpers) is generated twice: once
with `#[joblet::cached]` on the ten functions, once without. Both build in one target folder
(the dependencies once, untimed). Each round, alternating, times for each crate:

- `rebuild`: an edit of a helper (a const in the first module file), then `cargo build`;
- `full`: `cargo clean -p <crate>`, then `cargo build` of the crate alone.

The difference between the two crates is all that `#[cached]` costs the build: the macro's
parse, reading and indexing the crate's files (once per compilation), following what each
function reaches, and compiling the code it generates. The part that reading the crate takes
is printed by the macro itself when `JOBLET_MACRO_TIMING` is set (each function's fingerprint,
the first of a compilation with the crate's files read and indexed): the `reading` column.

    python3 benches/reference/reach_cost.py [--rounds 5] [--modules 20] [--optimized-macros]
"""
import argparse, os, re, shutil, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUNCTIONS_PER_MODULE = 46


def module(j, edit=0):
    """A module file of about 1,000 lines of everyday code: a derived struct and enum, a trait
    and its impl, helpers that call each other, iterators, closures, strings, a generic."""
    out = [f"""//! Helpers, part {j}.

use std::collections::HashMap;
use std::fmt;

pub const BASE: u64 = {j + edit};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {{
    pub id: u64,
    pub name: String,
    pub values: Vec<f64>,
    pub tags: HashMap<String, u32>,
}}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {{
    Small,
    Medium(u32),
    Large {{ weight: u64 }},
}}

pub trait Score {{
    fn score(&self) -> f64;
}}

impl Score for Record {{
    fn score(&self) -> f64 {{
        self.values.iter().copied().sum::<f64>() + self.tags.len() as f64
    }}
}}

impl fmt::Display for Kind {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        match self {{
            Kind::Small => write!(f, "small"),
            Kind::Medium(n) => write!(f, "medium {{n}}"),
            Kind::Large {{ weight }} => write!(f, "large {{weight}}"),
        }}
    }}
}}

pub fn total<T: Score>(items: &[T]) -> f64 {{
    items.iter().map(Score::score).sum()
}}
"""]
    for k in range(FUNCTIONS_PER_MODULE):
        prev = f"f{k - 1}(acc)" if k else "acc"
        out.append(f"""
/// Helper {k} of part {j}.
pub fn f{k}(x: u64) -> u64 {{
    let record = Record {{
        id: x ^ BASE,
        name: format!("record-{{x}}-{k}"),
        values: (0..{k % 4 + 2}).map(|i| (x + i) as f64 * 0.5).collect(),
        tags: HashMap::from([(String::from("k{k}"), {k}u32)]),
    }};
    let kind = match x % 3 {{
        0 => Kind::Small,
        1 => Kind::Medium({k}),
        _ => Kind::Large {{ weight: x }},
    }};
    let words: Vec<String> = record.name.split('-').map(str::to_uppercase).collect();
    let acc = x
        .wrapping_add(total(std::slice::from_ref(&record)) as u64)
        .wrapping_add(words.len() as u64 + kind.to_string().len() as u64);
    {prev}
}}
""")
    return "".join(out)


def main_rs(modules, cached):
    mods = "".join(f"mod m{j};\n" for j in range(modules))
    attr = '#[joblet::cached(dir = "cache")]\n' if cached else ""
    works = "".join(
        f"{attr}fn work{i}(x: u64) -> u64 {{\n    m{i * modules // 10}::f{FUNCTIONS_PER_MODULE - 1}(x)\n}}\n\n"
        for i in range(10))
    calls = " + ".join(f"work{i}(3)" for i in range(10))
    return f"{mods}\n{works}fn main() {{\n    println!(\"{{}}\", {calls});\n}}\n"


def write_crate(base, name, modules, cached):
    crate = os.path.join(base, name)
    os.makedirs(os.path.join(crate, "src"))
    with open(os.path.join(crate, "Cargo.toml"), "w") as f:
        f.write(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2024"\n\n'
                f'[dependencies]\njoblet = {{ path = "{ROOT}", default-features = false }}\n')
    for j in range(modules):
        with open(os.path.join(crate, "src", f"m{j}.rs"), "w") as f:
            f.write(module(j))
    with open(os.path.join(crate, "src", "main.rs"), "w") as f:
        f.write(main_rs(modules, cached))
    return crate


def cargo(base, *args):
    """The build's wall time, and what the macro said its fingerprints took, in seconds."""
    env = dict(os.environ, JOBLET_MACRO_TIMING="1")
    start = time.perf_counter()
    out = subprocess.run(["cargo", *args], cwd=base, check=True, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    reading = sum(float(m) for m in re.findall(r"fingerprint of `\w+` took ([0-9.]+) ms", out.stderr))
    return took, reading / 1e3


OPTIMIZED_MACROS = """
[profile.dev.package.joblet-macros]
opt-level = 3

[profile.dev.package.proc-macro2]
opt-level = 3
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modules", type=int, default=20)
    ap.add_argument("--optimized-macros", action="store_true",
                    help="build joblet-macros and proc-macro2 with opt-level 3, as README suggests")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="joblet-reach-cost-")
    crates = {"cached": write_crate(base, "gen_cached", args.modules, True),
              "plain": write_crate(base, "gen_plain", args.modules, False)}
    with open(os.path.join(base, "Cargo.toml"), "w") as f:
        f.write('[workspace]\nmembers = ["gen_cached", "gen_plain"]\nresolver = "2"\n')
        if args.optimized_macros:
            f.write(OPTIMIZED_MACROS)
    shutil.copy(os.path.join(ROOT, "Cargo.lock"), base)
    lines = sum(sum(1 for _ in open(os.path.join(crates["cached"], "src", n)))
                for n in os.listdir(os.path.join(crates["cached"], "src")))
    cargo(base, "build", "--workspace")  # dependencies, untimed
    times = {(c, w): [] for c in crates for w in ("rebuild", "full")}
    reading = {w: [] for w in ("rebuild", "full")}
    for r in range(args.rounds):
        for c, crate in (sorted(crates.items()) if r % 2 else sorted(crates.items(), reverse=True)):
            with open(os.path.join(crate, "src", "m0.rs"), "w") as f:
                f.write(module(0, edit=r + 1))
            for w in ("rebuild", "full"):
                if w == "full":
                    cargo(base, "clean", "-p", f"gen_{c}")
                took, read = cargo(base, "build", "-p", f"gen_{c}")
                times[(c, w)].append(took)
                if c == "cached":
                    reading[w].append(read)
    print(f"a crate of {lines} lines, ten functions; {args.rounds} rounds, alternating; "
          "medians, ranges in brackets, seconds")
    print("| build | without `#[cached]` | with `#[cached]` | added | added % | reading the crate | reading % |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for w in ("full", "rebuild"):
        p, c = times[("plain", w)], times[("cached", w)]
        mp, mc = statistics.median(p), statistics.median(c)
        r = reading[w]
        mr = statistics.median(r)
        print(f"| {w} | {mp:.2f} [{min(p):.2f}–{max(p):.2f}] | {mc:.2f} [{min(c):.2f}–{max(c):.2f}] "
              f"| {mc - mp:.2f} | {100 * (mc - mp) / mp:.0f} % | {mr:.3f} [{min(r):.3f}–{max(r):.3f}] "
              f"| {100 * mr / mp:.1f} % |")
    shutil.rmtree(base)


if __name__ == "__main__":
    main()
