use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(batch_size = 0; for i in 0..10 => i * 2);
}
