use joblet::parallel;

struct Model {
    weight: u64,
}

impl Model {
    fn run(&self) -> Vec<u64> {
        parallel!(backend = processes; for i in 0..10u64 => i * self.weight)
    }
}

fn main() {
    Model { weight: 2 }.run();
}
