//! placeholder: replaced by the mp-connection implementation
