//! The shared-memory manager: Python's `multiprocessing.managers.SharedMemoryManager`.
//!
//! A [`SharedMemoryManager`] is a manager whose server keeps a list of shared memory segments
//! ([`SharedMemory`] and [`ShareableList`]) made through it, and unlinks them all when it shuts
//! down. As in CPython, a segment is made by the process that asks for it (which gets the
//! [`SharedMemory`] itself, not a proxy), then registered with the server (`track_segment`).
//!
//! Beyond CPython:
//!
//! - The server attaches every segment it tracks, so a segment lives until the manager shuts
//!   down even after every other process closed it, as in CPython; but a server that is
//!   killed holds nothing any more, and mp-shared's resource tracker unlinks each segment as
//!   soon as its last user is gone (CPython's stay until the resource tracker exits).
//! - [`SharedMemoryManager::shutdown`] (and the drop) of the manager that started a server
//!   that was killed unlinks the segments this process made through it itself.
//! - [`SharedMemoryManager::segment_names`] lists what the server tracks.

use std::sync::{Mutex, PoisonError};

use mp_connection::Address;
use mp_core::Context;
use mp_shared::{Item, ShareableList, SharedMemory};

use crate::error::{Error, Result};
use crate::manager::Manager;

/// The segments the server process tracks, attached (there is one server per process).
static TRACKED: Mutex<Vec<SharedMemory>> = Mutex::new(Vec::new());

fn tracked() -> std::sync::MutexGuard<'static, Vec<SharedMemory>> {
    TRACKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server's object: Python's `SharedMemoryServer` methods `track_segment`,
/// `release_segment` and `list_segments` (its `SharedMemoryTracker`).
#[derive(Default)]
pub struct SegmentTracker;

impl SegmentTracker {
    fn track_segment(&mut self, name: String) -> std::result::Result<(), String> {
        let mut segments = tracked();
        if segments.iter().any(|s| s.name() == name) {
            return Ok(());
        }
        let segment = SharedMemory::attach(&name).map_err(|e| e.to_string())?;
        segments.push(segment);
        Ok(())
    }

    fn release_segment(&mut self, name: String) -> bool {
        let mut segments = tracked();
        let Some(i) = segments.iter().position(|s| s.name() == name) else {
            return false;
        };
        let segment = segments.swap_remove(i);
        drop(segments);
        if let Err(e) = segment.unlink() {
            log::debug!("shared memory manager: unlink {name}: {e}");
        }
        true
    }

    fn list_segments(&mut self) -> Vec<String> {
        tracked().iter().map(|s| s.name().to_owned()).collect()
    }
}

crate::exposed! {
    impl SegmentTracker as SegmentTrackerProxy {
        fn track_segment(&mut self, name: String) -> std::result::Result<(), String>;
        fn release_segment(&mut self, name: String) -> bool;
        fn list_segments(&mut self) -> Vec<String>;
    }
}

/// Run by the server process once it stopped serving: unlinks every tracked segment.
fn unlink_tracked() {
    for segment in std::mem::take(&mut *tracked()) {
        if let Err(e) = segment.unlink() {
            log::debug!("shared memory manager: unlink {}: {e}", segment.name());
        }
    }
}

/// A manager of shared memory segments, unlinked when it shuts down.
///
/// Python: `multiprocessing.managers.SharedMemoryManager`. [`new`](Self::new) starts its server
/// process (as `SharedMemoryManager().start()`); [`shared_memory`](Self::shared_memory) and
/// [`shareable_list`](Self::shareable_list) are Python's `smm.SharedMemory(size)` and
/// `smm.ShareableList(sequence)`; [`shutdown`](Self::shutdown), or the drop (Python's `with`
/// block), unlinks every segment made through it by any process.
///
/// ```
/// use mp_manager::SharedMemoryManager;
///
/// let smm = SharedMemoryManager::new()?;
/// let shm = smm.shared_memory(128)?;
/// shm.write_at(0, b"hello")?;
/// let sl = smm.shareable_list([1i64, 2, 3])?;
/// sl.set(0, "one")?;
/// assert_eq!(smm.segment_names()?.len(), 2);
/// drop(smm); // both names are gone from /dev/shm; `shm` and `sl` stay mapped here
/// assert!(mp_shared::SharedMemory::attach(shm.name()).is_err());
/// # Ok::<(), mp_manager::Error>(())
/// ```
///
/// Its server is a [`Manager`]'s: [`manager`](Self::manager) gives it, for proxies of the
/// built-in types.
#[derive(Debug)]
pub struct SharedMemoryManager {
    manager: Manager,
    tracker: SegmentTrackerProxy,
    /// The segments made through this handle: unlinked here if the server could not do it.
    made: Mutex<Vec<String>>,
}

impl SharedMemoryManager {
    /// Starts the server process under the default start method. Python:
    /// `SharedMemoryManager()` then `start()`.
    pub fn new() -> Result<SharedMemoryManager> {
        Self::with_context(mp_core::get_context(None))
    }

    /// [`new`](Self::new) under `context`'s start method. Python:
    /// `SharedMemoryManager(ctx=ctx)`.
    pub fn with_context(context: Context) -> Result<SharedMemoryManager> {
        let manager = Manager::builder()
            .context(context)
            .register::<SegmentTracker>()
            .finalizer(unlink_tracked)
            .process_name("SharedMemoryManager-server")
            .start()?;
        Self::from_manager(manager)
    }

    /// A shared-memory manager whose server was started elsewhere. Python:
    /// `SharedMemoryManager(address, authkey)` then `connect()`.
    pub fn connect(address: Address, authkey: &[u8]) -> Result<SharedMemoryManager> {
        Self::from_manager(Manager::connect(address, authkey)?)
    }

    fn from_manager(manager: Manager) -> Result<SharedMemoryManager> {
        let tracker = manager.create::<SegmentTrackerProxy>()?;
        Ok(SharedMemoryManager {
            manager,
            tracker,
            made: Mutex::new(Vec::new()),
        })
    }

    /// A new segment of `size` bytes, unlinked when the manager shuts down. Python:
    /// `smm.SharedMemory(size)`.
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory> {
        let shm = SharedMemory::create(None, size)?;
        self.track(shm.name())?;
        Ok(shm)
    }

    /// A new [`ShareableList`] holding `items`, unlinked when the manager shuts down. Python:
    /// `smm.ShareableList(sequence)`.
    pub fn shareable_list<I: Into<Item>>(
        &self,
        items: impl IntoIterator<Item = I>,
    ) -> Result<ShareableList> {
        let list = ShareableList::new(items)?;
        self.track(list.name())?;
        Ok(list)
    }

    /// Registers `name` with the server; on failure, the segment is unlinked at once.
    fn track(&self, name: &str) -> Result<()> {
        let tracked = match self.tracker.track_segment(name.to_owned()) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::InvalidState(format!(
                "the shared memory manager cannot track {name}: {message}"
            ))),
            Err(e) => Err(e),
        };
        match tracked {
            Ok(()) => {
                self.made
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(name.to_owned());
                Ok(())
            }
            Err(e) => {
                unlink(name);
                Err(e)
            }
        }
    }

    /// The names of the segments the server tracks (beyond Python: its `list_segments`).
    pub fn segment_names(&self) -> Result<Vec<String>> {
        self.tracker.list_segments()
    }

    /// Unlinks the segment `name` now and stops tracking it; `false` if the server did not
    /// track it. Python: the server's `release_segment`.
    pub fn release_segment(&self, name: &str) -> Result<bool> {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|n| n != name);
        self.tracker.release_segment(name.to_owned())
    }

    /// The server's address. Python: `smm.address`.
    pub fn address(&self) -> &Address {
        self.manager.address()
    }

    /// The manager underneath, for proxies of the built-in types on the same server.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// Stops the server, which unlinks every segment it tracks, and waits for it (when this
    /// process started it). If the server is gone (killed), the segments this process made
    /// through this manager are unlinked here. Python: `smm.shutdown()`.
    pub fn shutdown(&mut self) -> Result<()> {
        let stopped = self.manager.shutdown();
        if stopped.is_err() {
            for name in
                std::mem::take(&mut *self.made.lock().unwrap_or_else(PoisonError::into_inner))
            {
                unlink(&name);
            }
        }
        stopped
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        // A manager that only connected leaves the server to whoever started it.
        if !self.manager.started() {
            return;
        }
        if let Err(e) = self.shutdown() {
            log::debug!("shared memory manager: shutdown at drop: {e}");
        }
    }
}

/// Unlinks segment `name` if it still exists.
fn unlink(name: &str) {
    match SharedMemory::attach(name) {
        Ok(segment) => {
            if let Err(e) = segment.unlink() {
                log::debug!("shared memory manager: unlink {name}: {e}");
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => log::debug!("shared memory manager: unlink {name}: {e}"),
    }
}
