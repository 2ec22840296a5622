//! Integration tests of `salam-bot`, built into one binary.

// Shared helpers: loading the default pack from `bot-rules/`.
mod util;

// `normalize` and `detect_language`, data-driven.
mod normalize;
// Word boundaries, affixes, scoring and the decision table on small packs.
mod matching;
// Loader errors carry the right file:line.
mod loader;
// Empty, huge, emoji-only, bidi and regex-hostile input; proptest.
mod hostile;
// The default pack: examples, quick replies, context, quality bars on eval/*.tsv.
mod pack;
// Typos, built-in signals, the second stage, context and per-pack identity.
mod stages;
// The structural handoff signal (families of cue words, who + talk, reports).
mod affect;
// Inputs found by fuzzing (fuzz/, docs/fuzzing.md) and hostile inputs beside them.
mod fuzz_regressions;
