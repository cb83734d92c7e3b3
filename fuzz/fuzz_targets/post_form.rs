//! See `gatekeeper::fuzzing::post_form` for the input format and invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatekeeper::fuzzing::post_form(data));
