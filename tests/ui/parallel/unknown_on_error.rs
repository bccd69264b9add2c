use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(on_error = ignore; for i in 0..10 => i * 2);
}
