//! Policy evaluation benchmarks.
fn main() {}
