//! placeholder: replaced by the mp-queue implementation
