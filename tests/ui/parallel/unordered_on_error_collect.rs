use joblet::parallel;

fn main() {
    let _results = parallel!(return_as = unordered, on_error = collect; for i in 0..10 => i * 2);
}
