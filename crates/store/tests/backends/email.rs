//! The store's email, on every backend.

#[allow(unused_imports)]
use crate::common::each_backend;
