//! Integration tests of `salam-routing`, built into one binary.

// Shared builders and effect filters.
mod support;
// One test (or data table) per routing rule.
mod rules;
// Random operation sequences across three sites that share agents, with every invariant
// checked after every step; restores from a projection of the state.
mod properties;
// A preferred agent (key account owner) first, else the usual rule.
mod preferred;
