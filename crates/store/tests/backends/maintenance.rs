//! The store's maintenance, on every backend.

#[allow(unused_imports)]
use crate::common::each_backend;
