use joblet::cached;

// A destructured parameter has no name that `ignore` could list.
#[cached(dir = "cache", ignore = [range])]
fn span((lo, hi): (u32, u32)) -> u32 {
    hi - lo
}

fn main() {
    span((1, 2));
}
