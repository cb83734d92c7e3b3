//! See `gatekeeper::fuzzing::rules` for the input format and invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatekeeper::fuzzing::rules(data));
