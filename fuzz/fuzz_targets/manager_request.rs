//! `cargo xtask fuzz manager_request SECONDS`: see `mp_fuzz::manager_request` and fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp_fuzz::MaxAlloc;

#[global_allocator]
static ALLOC: MaxAlloc = MaxAlloc;

fuzz_target!(|data: &[u8]| mp_fuzz::manager_request(data));
