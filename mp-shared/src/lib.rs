//! placeholder: replaced by the mp-shared implementation
