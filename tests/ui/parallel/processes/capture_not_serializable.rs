use joblet::parallel;

struct Model {
    weight: u64,
}

fn main() {
    let model = Model { weight: 3 };
    let _out: Vec<u64> = parallel!(backend = processes; for i in 0..10u64 => i * model.weight);
}
