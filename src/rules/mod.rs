//! Rule files: `raw` (what serde reads, with spans), `compile` (validation
//! into ids, every error at once), `model` (the indexed, immutable result).

pub mod compile;
pub mod model;
pub mod raw;
