//! quarry-ann (being written).
