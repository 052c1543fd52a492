//! `cargo xtask fuzz handshake_client SECONDS`: see `mp_fuzz::handshake_client` and fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp_fuzz::MaxAlloc;

#[global_allocator]
static ALLOC: MaxAlloc = MaxAlloc;

fuzz_target!(|data: &[u8]| mp_fuzz::handshake_client(data));
