//! `Py`: a serde value that prints like Python's `repr`, for the examples.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that prints like Python's `repr`: enough of Python's types for this example.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Py {
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<Py>),
    /// `None`.
    None,
}

impl fmt::Display for Py {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Py::Int(i) => write!(f, "{i}"),
            Py::Float(x) => write!(f, "{x:?}"),
            Py::Str(s) => write!(f, "'{s}'"),
            Py::None => f.write_str("None"),
            Py::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}
