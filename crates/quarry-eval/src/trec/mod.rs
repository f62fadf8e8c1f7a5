//! TREC files and trec_eval measures (being written).
