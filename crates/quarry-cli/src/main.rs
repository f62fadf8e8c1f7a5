//! quarry (being written).
fn main() {}
