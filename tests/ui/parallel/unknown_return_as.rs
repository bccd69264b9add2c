use joblet::parallel;

fn main() {
    let _out = parallel!(return_as = stream; for i in 0..10 => i * 2);
}
