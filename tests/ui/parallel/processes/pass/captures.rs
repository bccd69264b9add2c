//! Bodies whose captures the macro must find: generic code, format strings, nested closures,
//! shadowing, many captures, and names that are not captures (functions, constants).
use joblet::parallel;

const OFFSET: u64 = 1;

fn double(x: u64) -> u64 {
    2 * x
}

fn scaled<T: Copy + Into<u64> + serde::Serialize + serde::de::DeserializeOwned>(factor: T) -> Vec<u64> {
    parallel!(backend = processes, n_jobs = 2; for i in 0..4u64 => double(i) * factor.into() + OFFSET)
}

fn main() {
    assert_eq!(scaled(3u32), [1, 7, 13, 19]);

    let (a, b, c, d, e, f, g, h, i2, j, k, l, m) = (1u64, 2u64, 3u64, 4u64, 5u64, 6u64, 7u64, 8u64, 9u64, 10u64, 11u64, 12u64, 13u64);
    let sums = parallel!(backend = processes; for x in 0..2u64 => x + a + b + c + d + e + f + g + h + i2 + j + k + l + m);
    assert_eq!(sums, [91, 92]);

    let name = String::from("run");
    let width = 6;
    let labels = parallel!(backend = processes; for i in 0..3 => format!("{name}-{i:>w$}", w = width));
    assert_eq!(labels, ["run-     0", "run-     1", "run-     2"]);

    let words = vec![String::from("a"), String::from("bb")];
    let weight = 10usize;
    let lengths = parallel!(backend = processes; for i in 0..2usize => {
        let weight = weight + 1; // shadows the capture inside the body
        words.iter().map(|w| w.len() * weight).sum::<usize>() + i
    });
    assert_eq!(lengths, [33, 34]);

    // Options of workers, and what they capture: a generator, arrays in shared memory.
    let values = joblet::Array::from(vec![2.0f64; 300_000]);
    let idle = std::time::Duration::from_secs(1);
    let sums: Vec<f64> = parallel!(backend = processes, return_as = generator, max_nbytes = "1M",
        idle_timeout = idle, pre_dispatch = 2; for i in 0..3usize => values[i] * i as f64)
    .collect();
    assert_eq!(sums, [0.0, 2.0, 4.0]);
}
