//! The store's rest, on every backend.

#[allow(unused_imports)]
use crate::common::each_backend;
