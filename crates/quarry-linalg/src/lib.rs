//! quarry-linalg (being written).
