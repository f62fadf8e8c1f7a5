//! Point ids as users give them: unsigned 64-bit integers or UUIDs (Qdrant's convention), parsed
//! from JSON and printed back the same way.

use quarry_core::{Error, Result};
use serde_json::Value;

/// A point's external id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A UUID (any version), kept as its 128 bits.
    Uuid(u128),
}

impl PointId {
    /// Parses a JSON id: a non-negative integer or a UUID string (`8-4-4-4-12` hex digits).
    pub fn from_json(v: &Value) -> Result<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num).ok_or_else(|| {
                Error::InvalidArgument(format!("id {n} is not an unsigned 64-bit integer or a UUID string"))
            }),
            Value::String(s) => PointId::parse_uuid(s),
            other => Err(Error::InvalidArgument(format!(
                "id {other} has the wrong type: expected an unsigned integer or a UUID string"
            ))),
        }
    }

    /// Parses an id given on a command line: digits, or a UUID.
    pub fn parse(s: &str) -> Result<PointId> {
        match s.parse::<u64>() {
            Ok(n) => Ok(PointId::Num(n)),
            Err(_) => PointId::parse_uuid(s),
        }
    }

    fn parse_uuid(s: &str) -> Result<PointId> {
        let bad = || Error::InvalidArgument(format!("id {s:?} is neither an unsigned integer nor a UUID"));
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        u128::from_str_radix(&hex, 16).map(PointId::Uuid).map_err(|_| bad())
    }

    /// The id as JSON (a number or a lowercase hyphenated UUID string).
    pub fn to_json(self) -> Value {
        match self {
            PointId::Num(n) => Value::from(n),
            PointId::Uuid(_) => Value::from(self.to_string()),
        }
    }
}

impl std::fmt::Display for PointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => {
                let h = format!("{u:032x}");
                write!(f, "{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
            }
        }
    }
}
