//! quarry-testkit (being written).
