//! The `.init_array` constructor: every process of a program that uses this crate runs it before
//! `main`; a re-executed child (spawn, forkserver, a helper) is taken over there.
#![allow(unsafe_code)]

/// The constructor `.init_array` entry: a spawned child or a forkserver takes over here, before
/// `main` (and before the Rust runtime's own setup); any other process returns at once.
extern "C" fn on_load(
    _argc: libc::c_int,
    _argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    crate::sys::register_fork_hook();
    crate::bootstrap::on_load();
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn(libc::c_int, *const *const libc::c_char, *const *const libc::c_char) =
    on_load;

/// Keeps the constructor in the final binary: the linker drops an archive member nothing
/// refers to, so every path that starts a child refers to it through here.
pub(crate) fn keep_constructor() {
    std::hint::black_box(&ON_LOAD);
}
