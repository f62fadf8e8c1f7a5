//! Vector and id file formats (being written).
