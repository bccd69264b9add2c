use joblet::parallel;

fn main() {
    let _out = parallel!(return_as = generator; for i in 0..10 => i * 2);
}
