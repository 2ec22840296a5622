//! Integration tests of `salam-routing`, built into one binary.

// Shared builders and effect filters.
mod support;
// One test (or data table) per routing rule.
mod rules;
// Random operation sequences with invariants checked after every step.
mod properties;
