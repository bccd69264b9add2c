use joblet::cached;

/// Takes the wrong argument: a validator reads the entry's information.
fn fresh_enough(age_in_days: u64) -> bool {
    age_in_days < 7
}

#[cached(dir = "cache", validate = fresh_enough)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
