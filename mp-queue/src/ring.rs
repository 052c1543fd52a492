//! The shared ring every queue is made of.
//!
//! One shared segment: a header page (see `sys::Header`) and a data area of `capacity` bytes
//! (a power of two, sparse: pages exist only once written). Items are records: an 8-byte header
//! (`len: u32`, `kind: u32`) and the MessagePack encoding, encoded in place, padded to 8 bytes,
//! never split across the end of the area (a `SKIP` record fills the end instead).
//!
//! `tail` and `head` each pack an item count (mod 2^32) and a byte position (mod 2^31) into one
//! `AtomicU64`, so publishing an item or consuming one is a single store: a producer or consumer
//! killed at any instant leaves the ring either before or after its step, never in between.
//! Producers hold the put lock, consumers the get lock (robust `mp_sync::Lock`s, so a holder's
//! death frees them). A producer writes past the tail, where nobody reads, then stores the new
//! tail; a consumer reads between head and tail, where nobody writes, then stores the new head.
//! A consumer killed before its store leaves the item for the next consumer; one killed after
//! it has taken the item with it.
//!
//! Each side keeps its last view of the other's word on a line of its own (`head_seen`,
//! `tail_seen`): a put loads the consumers' line only when its view shows too little room, a
//! get loads the producers' line only when the items its view shows are taken. Loading the
//! other side's line on every step took that line from the other CPU every time: half the
//! time of a put, and 4.4 M items/s instead of 8-9 M between two processes on a 2-CPU VM.
//! A view is never ahead of the real word, and one that is not a plausible past value (as a
//! test's surgery leaves) is ignored.
//!
//! Residency: the data area is address space; pages exist once written. To keep reusing the
//! same warm pages, head and tail go back to offset 0 once they are past `soft` bytes: when the
//! queue is empty (whoever finds it so, producer or consumer, publishes a skip record to the end
//! of the area and, holding both locks, moves the head past it), and when a producer finds the
//! queue short while a consumer is at work (it writes its item at offset 0 behind a skip record,
//! which the consumer passes soon). Without a consumer at work, producers keep going forward,
//! so the whole capacity stays available to a burst; a skip record still pending when consumers
//! stop leaves the queue with about `soft` bytes of room until the next get passes it. After a
//! burst drains, the pages used past `soft` are released (`FALLOC_FL_PUNCH_HOLE`). `soft`
//! grows with the items: it holds four of the largest put so far (up to 256 MiB and half the
//! area), so that large items go back to warm pages as small ones do.
//!
//! Sleepers (consumers waiting for an item, producers for room, `join`) sleep in slices of at
//! most 100 ms: a process killed between its store and its wake-up call delays them by at most
//! that much. A process killed while asleep leaves a sleeper count one too high, which only
//! costs a spare wake-up call per operation afterwards.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use mp_core::{Deadline, SharedSegment, SharedView};
use mp_sync::futex;
use mp_sync::Lock;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys::{self, DataWriter, Header, HEADER};

const MAGIC: u32 = 0x5155_4555; // "QUEU"
const ITEM: u32 = 0x4d45_5449;
const SKIP: u32 = 0x5049_4b53;
const POS_MASK: u64 = (1 << 31) - 1;
/// The default data area: 1 GiB of address space, sparse.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 30;
/// The default resident part of the data area.
pub(crate) const DEFAULT_SOFT: usize = 4 << 20;
/// The longest a waiter sleeps before looking again.
const SLICE: std::time::Duration = std::time::Duration::from_millis(100);
/// Release pages only when at least this much lies past `soft`.
const PUNCH_MIN: u64 = 1 << 20;
/// The most `soft` grows to on its own (see [`Ring::encode`]).
const SOFT_GROWS_TO: u64 = 256 << 20;

fn pos(x: u64) -> u64 {
    x & POS_MASK
}

fn count(x: u64) -> u32 {
    (x >> 32) as u32
}

fn pack(count: u32, pos: u64) -> u64 {
    (u64::from(count) << 32) | (pos & POS_MASK)
}

fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// The shared ring behind a queue handle. Clones share it.
#[derive(Clone)]
pub(crate) struct Ring {
    /// The header, viewed once (size and alignment checked); its segment holds the data too.
    view: SharedView<Header>,
    put_lock: Lock,
    get_lock: Lock,
}

#[derive(Serialize, Deserialize)]
struct RingWire {
    segment: SharedSegment,
    put_lock: Lock,
    get_lock: Lock,
}

impl Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RingWire", 3)?;
        st.serialize_field("segment", self.view.segment())?;
        st.serialize_field("put_lock", &self.put_lock)?;
        st.serialize_field("get_lock", &self.get_lock)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = RingWire::deserialize(d)?;
        let not_a_queue = || serde::de::Error::custom("the shared segment received is not a queue");
        let len = w.segment.len() as u64;
        let view = SharedView::<Header>::new(w.segment).map_err(|_| not_a_queue())?;
        let consts = &view.get().consts.0;
        // The data area the header claims must be inside the segment.
        if consts.magic.load(Ordering::Acquire) != MAGIC
            || (HEADER as u64).saturating_add(consts.capacity.load(Ordering::Relaxed)) > len
        {
            return Err(not_a_queue());
        }
        Ok(Ring {
            view,
            put_lock: w.put_lock,
            get_lock: w.get_lock,
        })
    }
}

/// Takes a robust lock; a dead previous holder needs no repair (every step is one store).
fn take(lock: &Lock, deadline: Deadline) -> bool {
    lock.acquire_deadline(deadline).unwrap_or(true)
}

/// Releases a lock this handle took.
fn give(lock: &Lock) {
    let _ = lock.release();
}

/// Holds one of the ring's locks; releases it when dropped, also when user code (an item's
/// `Serialize` or `Deserialize`) panics.
struct Held<'a>(&'a Lock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        give(self.0);
    }
}

impl Ring {
    /// A new ring. `capacity` is rounded up to a power of two (at least 64 KiB, at most 1 GiB);
    /// `maxsize == 0` means no bound on the number of items.
    pub(crate) fn new(kind: u32, capacity: usize, soft: usize, maxsize: u64) -> Result<Ring> {
        let capacity = capacity.clamp(1 << 16, 1 << 30).next_power_of_two();
        let soft = soft.clamp(1 << 12, capacity);
        let view = SharedView::<Header>::new(SharedSegment::new(HEADER + capacity)?)?;
        let h = view.get();
        h.consts.0.kind.store(kind, Ordering::Relaxed);
        h.consts
            .0
            .capacity
            .store(capacity as u64, Ordering::Relaxed);
        h.consts.0.soft.store(soft as u64, Ordering::Relaxed);
        h.consts.0.maxsize.store(maxsize, Ordering::Relaxed);
        h.consts.0.magic.store(MAGIC, Ordering::Release);
        Ok(Ring {
            view,
            put_lock: Lock::new()?,
            get_lock: Lock::new()?,
        })
    }

    #[inline]
    fn h(&self) -> &Header {
        self.view.get()
    }

    /// The segment: the header page, then the data area.
    #[inline]
    fn segment(&self) -> &SharedSegment {
        self.view.segment()
    }

    /// The kind tag given at creation.
    pub(crate) fn kind(&self) -> u32 {
        self.h().consts.0.kind.load(Ordering::Relaxed)
    }

    fn capacity(&self) -> u64 {
        self.h().consts.0.capacity.load(Ordering::Relaxed)
    }

    fn soft(&self) -> u64 {
        self.h().consts.0.soft.load(Ordering::Relaxed)
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.h().consts.0.maxsize.load(Ordering::Relaxed)
    }

    /// Items in the ring now (exact when no put or get is in progress).
    pub(crate) fn qsize(&self) -> u64 {
        let h = self.h();
        let head = h.consumer.0.head.load(Ordering::Acquire);
        let tail = h.producer.0.tail.load(Ordering::Acquire);
        u64::from(count(tail).wrapping_sub(count(head)))
    }

    // ----- put -----

    /// Encodes `item` into the ring and publishes it.
    pub(crate) fn put<T: Serialize + ?Sized>(&self, item: &T, deadline: Deadline) -> Result<()> {
        // The put lock is only held for one encode, never while sleeping: wait for it even for
        // `put_nowait`, whose `Full` must mean "no room", not "another producer is busy".
        let lock_deadline = if deadline.has_passed() {
            Deadline::NEVER
        } else {
            deadline
        };
        if !take(&self.put_lock, lock_deadline) {
            return Err(Error::Full);
        }
        let _held = Held(&self.put_lock);
        self.put_locked(item, deadline)
    }

    fn put_locked<T: Serialize + ?Sized>(&self, item: &T, deadline: Deadline) -> Result<()> {
        let h = self.h();
        let maxsize = self.maxsize();
        // First with the head as producers last saw it (no load of the consumers' line, which
        // would take it from the consumer on every put), then, if that shows too little room
        // or the queue past `soft`, with the real one.
        let mut fresh = false;
        loop {
            let tail = h.producer.0.tail.load(Ordering::Relaxed);
            let head = if fresh {
                self.load_head()
            } else {
                h.producer_own.0.head_seen.load(Ordering::Relaxed)
            };
            let queued = count(tail).wrapping_sub(count(head));
            if pos(tail) % self.capacity() >= self.soft() {
                if !fresh {
                    fresh = true;
                    continue;
                }
                // An empty queue past `soft`: start again at offset 0 (the pages there are warm).
                if tail == head {
                    self.restart_at_zero(tail, head);
                    continue;
                }
            }
            if maxsize == 0 || u64::from(queued) < maxsize {
                match self.encode(item, tail, head)? {
                    Some(new_tail) => {
                        self.publish(new_tail);
                        return Ok(());
                    }
                    None if !fresh => {
                        fresh = true;
                        continue;
                    }
                    None if self.never_fits(item) => {
                        return Err(Error::TooLarge {
                            capacity: self.capacity(),
                        });
                    }
                    // Empty, yet no room in one piece: the head sits in the middle of the area.
                    // Send everyone back to offset 0 and try again.
                    None if queued == 0 && self.restart_at_zero(tail, head) => continue,
                    None => {}
                }
            } else if !fresh {
                fresh = true;
                continue;
            }
            // Full (by count or by bytes): wait for a consumer, without the put lock.
            if deadline.has_passed() || !self.wait_for_space(head, deadline) {
                return Err(Error::Full);
            }
        }
    }

    /// Loads the real head (put lock held) and keeps it as the producers' view of it.
    fn load_head(&self) -> u64 {
        let h = self.h();
        let head = h.consumer.0.head.load(Ordering::Acquire);
        h.producer_own.0.head_seen.store(head, Ordering::Relaxed);
        head
    }

    /// Stores a new tail and wakes a sleeping consumer.
    fn publish(&self, new_tail: u64) {
        let p = &self.h().producer.0;
        p.tail.store(new_tail, Ordering::SeqCst);
        if p.item_sleepers.load(Ordering::SeqCst) > 0 {
            p.items_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(&p.items_seq);
        }
    }

    /// With the queue empty (put lock held): publishes a skip record from the tail to the end of
    /// the area, then, if no consumer holds the get lock, moves the head past it too. Returns
    /// whether head and tail are both at offset 0 now; otherwise a consumer moves the head
    /// (it eats skip records while it waits) and the caller waits for that.
    fn restart_at_zero(&self, tail: u64, head: u64) -> bool {
        let cap = self.capacity();
        let mut tail = tail;
        if pos(tail) == pos(head) && pos(tail) % cap != 0 {
            tail = self.publish_skip(tail);
        }
        if !matches!(self.get_lock.try_acquire(), Ok(true) | Err(_)) {
            return false;
        }
        let _held = Held(&self.get_lock);
        self.eat_skips();
        pos(self.h().consumer.0.head.load(Ordering::Relaxed)) == pos(tail) && pos(tail) % cap == 0
    }

    /// Writes a skip record from `tail`'s offset to the end of the area and publishes it (put
    /// lock held). Returns the new tail, at offset 0 of the next lap.
    fn publish_skip(&self, tail: u64) -> u64 {
        let cap = self.capacity();
        let off = pos(tail) % cap;
        sys::write_data(
            self.segment(),
            off as usize,
            &record_header((cap - off) as u32, SKIP),
        );
        let new_tail = pack(count(tail), pos(tail) + (cap - off));
        self.publish(new_tail);
        new_tail
    }

    /// With the get lock held and no item queued: moves the head over any skip records up to
    /// the tail, and wakes producers waiting for room.
    fn eat_skips(&self) {
        let h = self.h();
        let head = h.consumer.0.head.load(Ordering::Relaxed);
        let tail = h.producer.0.tail.load(Ordering::Acquire);
        // Equal counts: nothing between head and tail but skip records.
        if count(tail) == count(head) && pos(tail) != pos(head) {
            h.consumer
                .0
                .head
                .store(pack(count(head), pos(tail)), Ordering::SeqCst);
            self.notify_space();
        }
    }

    /// Wakes producers waiting for room.
    fn notify_space(&self) {
        let c = &self.h().consumer.0;
        if c.space_sleepers.load(Ordering::SeqCst) > 0 {
            c.space_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(&c.space_seq);
        }
    }

    /// Sleeps (put lock released) until the head moves from `head` or `deadline` passes;
    /// returns with the put lock held again, false on timeout.
    fn wait_for_space(&self, head: u64, deadline: Deadline) -> bool {
        let c = &self.h().consumer.0;
        c.space_sleepers.fetch_add(1, Ordering::SeqCst);
        let seq = c.space_seq.load(Ordering::SeqCst);
        give(&self.put_lock);
        if c.head.load(Ordering::SeqCst) == head {
            futex::wait(&c.space_seq, seq, slice(deadline));
        }
        c.space_sleepers.fetch_sub(1, Ordering::SeqCst);
        // The caller's guard releases the lock when `put` returns: hold it again regardless.
        take(&self.put_lock, Deadline::NEVER);
        c.head.load(Ordering::SeqCst) != head || !deadline.has_passed()
    }

    /// Whether `item` can never fit in the data area, however empty (measured by encoding it
    /// into a counter).
    fn never_fits<T: Serialize + ?Sized>(&self, item: &T) -> bool {
        let mut counter = Counter(0);
        rmp_serde::encode::write(&mut counter, item).is_ok()
            && align8(8 + counter.0) > self.capacity()
    }

    /// Encodes `item` at the best free place; `Ok(None)` if it does not fit now.
    fn encode<T: Serialize + ?Sized>(&self, item: &T, tail: u64, head: u64) -> Result<Option<u64>> {
        let h = self.h();
        let cap = self.capacity();
        let used = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
        let free = cap - used.min(cap);
        let off = pos(tail) % cap;
        // Continue where the tail is, or skip the rest of the area and start again at 0.
        let here = (off, (cap - off).min(free), false);
        let wrap = (
            0,
            if off > 0 {
                free.saturating_sub(cap - off)
            } else {
                0
            },
            true,
        );
        // Past `soft`, with a short queue and a consumer at work (it will soon pass the skip
        // record, which counts as queued bytes until then), go back to the warm pages at 0.
        let soft = h.consts.0.soft.load(Ordering::Relaxed);
        let early = off >= soft && used <= soft / 2 && self.get_lock.is_locked();
        let order = if early { [wrap, here] } else { [here, wrap] };
        for (start, room, skip) in order {
            if room < 16 {
                continue;
            }
            let mut w = DataWriter::new(self.segment(), start as usize + 8, room as usize - 8);
            match rmp_serde::encode::write(&mut w, item) {
                Ok(()) => {}
                Err(_) if w.overflowed() => continue,
                Err(e) => return Err(Error::Codec(e.to_string())),
            }
            let len = w.written() as u64;
            let record = align8(8 + len);
            if record > room {
                continue;
            }
            sys::write_data(
                self.segment(),
                start as usize,
                &record_header(len as u32, ITEM),
            );
            let mut advance = record;
            if skip {
                sys::write_data(
                    self.segment(),
                    off as usize,
                    &record_header((cap - off) as u32, SKIP),
                );
                advance += cap - off;
            }
            // The resident part holds four of the largest records so far (at most
            // SOFT_GROWS_TO and half the area; producers alone, under the put lock, raise it):
            // with a fixed 4 MiB, items of 4 MiB or more could never go back to the warm pages
            // at 0 while one was queued, so each went to fresh pages, released again at every
            // drain, and a stream of them ran at 0.5-0.9 GB/s instead of 6-9 (Dec 4).
            let grown = (4 * record).min(SOFT_GROWS_TO).min(cap / 2);
            if grown > soft {
                h.consts.0.soft.store(grown, Ordering::Relaxed);
            }
            // Only producers, under the put lock, touch it.
            let high = &h.producer_own.0.high_water;
            if start + record > high.load(Ordering::Relaxed) {
                high.store(start + record, Ordering::Relaxed);
            }
            return Ok(Some(pack(count(tail).wrapping_add(1), pos(tail) + advance)));
        }
        Ok(None)
    }

    // ----- get -----

    /// Takes the oldest item and decodes it.
    pub(crate) fn get<T: DeserializeOwned>(&self, deadline: Deadline) -> Result<T> {
        if !take(&self.get_lock, deadline) {
            return Err(Error::Empty);
        }
        let _held = Held(&self.get_lock);
        self.get_locked(deadline)
    }

    fn get_locked<T: DeserializeOwned>(&self, deadline: Deadline) -> Result<T> {
        let h = self.h();
        let tail = self.wait_for_item(deadline)?;
        let head = h.consumer.0.head.load(Ordering::Relaxed);
        let cap = self.capacity();
        let used = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
        // Skip records (at most one at the end of the area and one left by a rewind) lead to
        // the item.
        let mut skipped = 0;
        let (off, len) = loop {
            let off = (pos(head) + skipped) % cap;
            let (len, kind) = self.record_at(off);
            match kind {
                SKIP if len >= 8 && off + u64::from(len) <= cap && skipped < 2 * cap => {
                    skipped += u64::from(len);
                }
                ITEM => break (off, len),
                _ => {
                    return Err(Error::Corrupt(format!(
                        "bad record at offset {off}: kind {kind:#x}, length {len}"
                    )))
                }
            }
        };
        let record = align8(8 + u64::from(len));
        if skipped + record > used || off + record > cap {
            return Err(Error::Corrupt(format!(
                "bad record at offset {off}: length {len}, {used} bytes queued"
            )));
        }
        let bytes = sys::read_data(self.segment(), off as usize + 8, len as usize);
        // The codec's decode: bounded nesting, whatever the bytes and the type.
        let value = panic::catch_unwind(AssertUnwindSafe(|| mp_core::codec::decode::<T>(bytes)));
        // Consume the item whatever happened to its decoding, so the queue keeps working.
        h.consumer.0.head.store(
            pack(count(head).wrapping_add(1), pos(head) + skipped + record),
            Ordering::SeqCst,
        );
        self.notify_space();
        self.rewind_if_empty();
        match value {
            Ok(decoded) => decoded.map_err(|e| match e {
                mp_core::Error::Codec(m) => Error::Codec(m),
                other => Error::Codec(other.to_string()),
            }),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Waits (get lock held) until an item is queued; returns the tail that shows it. Eats the
    /// skip records it finds meanwhile, so producers waiting for room at offset 0 get it.
    fn wait_for_item(&self, deadline: Deadline) -> Result<u64> {
        let h = self.h();
        let p = &h.producer.0;
        let seen = &h.consumer_own.0.tail_seen;
        // The items of the tail that consumers last loaded, if some are left: no load of the
        // producers' line, which would take it from the producer on every get. Only a tail
        // ahead of the head by at most the whole area is used (any other value is stale).
        let head = h.consumer.0.head.load(Ordering::Relaxed);
        let tail = seen.load(Ordering::Relaxed);
        let items = count(tail).wrapping_sub(count(head));
        let bytes = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
        if items != 0 && items < 1 << 31 && bytes <= self.capacity() {
            return Ok(tail);
        }
        // The producers' line is looked at only after a short pause: a producer streaming
        // items has put several by then, all taken with this one look.
        let mut backoff = mp_core::spin::Backoff::after_a_pause();
        loop {
            let head = h.consumer.0.head.load(Ordering::Relaxed);
            let tail = p.tail.load(Ordering::Acquire);
            if count(tail) != count(head) {
                seen.store(tail, Ordering::Relaxed);
                return Ok(tail);
            }
            if pos(tail) != pos(head) {
                self.eat_skips();
                continue;
            }
            if deadline.has_passed() {
                return Err(Error::Empty);
            }
            if backoff.snooze() {
                continue;
            }
            p.item_sleepers.fetch_add(1, Ordering::SeqCst);
            let seq = p.items_seq.load(Ordering::SeqCst);
            if p.tail.load(Ordering::SeqCst) == tail {
                // Sleep in slices: a producer killed between publishing and waking us must not
                // leave us asleep beside an item.
                futex::wait(&p.items_seq, seq, slice(deadline));
            }
            p.item_sleepers.fetch_sub(1, Ordering::SeqCst);
            if deadline.has_passed() && count(p.tail.load(Ordering::Acquire)) == count(head) {
                return Err(Error::Empty);
            }
        }
    }

    fn record_at(&self, off: u64) -> (u32, u32) {
        let b = sys::read_data(self.segment(), off as usize, 8);
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let kind = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        (len, kind)
    }

    /// When the queue is empty past `soft` (get lock held), sends head and tail back to offset
    /// 0 (so a steady queue keeps reusing its first pages) and releases the pages used past
    /// `soft`. Needs the put lock to move the tail; skipped if a producer holds it (the next get
    /// that empties the queue tries again). Done as a skip record, published and then eaten: a
    /// consumer killed in between leaves a skip the next one eats.
    fn rewind_if_empty(&self) {
        let h = self.h();
        let cap = self.capacity();
        let soft = h.consts.0.soft.load(Ordering::Relaxed);
        let head = h.consumer.0.head.load(Ordering::Relaxed);
        if pos(head) % cap < soft || h.producer.0.tail.load(Ordering::Acquire) != head {
            return;
        }
        if !matches!(self.put_lock.try_acquire(), Ok(true) | Err(_)) {
            return;
        }
        let _held = Held(&self.put_lock);
        let tail = h.producer.0.tail.load(Ordering::Acquire);
        if tail != head {
            return;
        }
        let new = self.publish_skip(tail);
        h.consumer.0.head.store(new, Ordering::SeqCst);
        let high = h
            .producer_own
            .0
            .high_water
            .swap(0, Ordering::Relaxed)
            .min(cap);
        if high >= soft + PUNCH_MIN {
            let from = soft.next_multiple_of(4096);
            let _ = rustix::fs::fallocate(
                self.segment().fd(),
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                HEADER as u64 + from,
                high.next_multiple_of(4096).saturating_sub(from),
            );
        }
        self.notify_space();
    }

    // ----- task accounting (JoinableQueue) -----

    /// Marks one item done; more than were put is [`Error::TaskDone`].
    pub(crate) fn task_done(&self) -> Result<()> {
        let h = self.h();
        let t = &h.tasks.0;
        loop {
            let done = t.done.load(Ordering::SeqCst);
            let put = count(h.producer.0.tail.load(Ordering::SeqCst));
            if done == put {
                return Err(Error::TaskDone);
            }
            if t.done
                .compare_exchange(
                    done,
                    done.wrapping_add(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                break;
            }
        }
        if t.join_sleepers.load(Ordering::SeqCst) > 0 {
            t.done_seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(&t.done_seq);
        }
        Ok(())
    }

    /// Waits until every item put has been marked done; false on timeout.
    pub(crate) fn join(&self, deadline: Deadline) -> bool {
        let h = self.h();
        let t = &h.tasks.0;
        let finished =
            || t.done.load(Ordering::SeqCst) == count(h.producer.0.tail.load(Ordering::SeqCst));
        loop {
            if finished() {
                return true;
            }
            t.join_sleepers.fetch_add(1, Ordering::SeqCst);
            let seq = t.done_seq.load(Ordering::SeqCst);
            if !finished() {
                futex::wait(&t.done_seq, seq, slice(deadline));
            }
            t.join_sleepers.fetch_sub(1, Ordering::SeqCst);
            if deadline.has_passed() {
                return finished();
            }
        }
    }
}

/// The end of the next sleep: at most [`SLICE`] away, so a waker killed between its store and
/// its wake-up costs a waiter at most that much.
fn slice(deadline: Deadline) -> Deadline {
    Deadline::at(deadline.slice(SLICE))
}

/// Counts the bytes an encoding takes.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn record_header(len: u32, kind: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&len.to_le_bytes());
    b[4..].copy_from_slice(&kind.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_ring() -> Ring {
        Ring::new(1, 1 << 16, 1 << 12, 0).unwrap()
    }

    /// The producers' view of the head and the consumers' view of the tail are hints: a stale
    /// one costs a load of the real value, never a lost item, an invented one or a false
    /// `Full`.
    #[test]
    fn stale_views_of_head_and_tail_lose_nothing_and_invent_nothing() {
        let ring = small_ring();
        let h = ring.h();
        // Fill the area, so that the producers' view of the head says "full".
        let mut n = 0u64;
        while ring.put(&(n, vec![0u8; 64]), Deadline::now()).is_ok() {
            n += 1;
        }
        assert!(n > 100, "only {n} items fit");
        let full_head = h.producer_own.0.head_seen.load(Ordering::Relaxed);
        for i in 0..n {
            assert_eq!(ring.get::<(u64, Vec<u8>)>(Deadline::now()).unwrap().0, i);
        }
        // Every item is gone; a producer still holding the old head must look again.
        h.producer_own
            .0
            .head_seen
            .store(full_head, Ordering::Relaxed);
        ring.put(&(7u64, vec![1u8; 64]), Deadline::now())
            .expect("a stale head made a false Full");
        // A consumers' view of the tail that is ahead of any real tail is ignored...
        let tail = h.producer.0.tail.load(Ordering::SeqCst);
        h.consumer_own.0.tail_seen.store(
            pack(count(tail).wrapping_add(5), pos(tail) + (1 << 20)),
            Ordering::Relaxed,
        );
        assert_eq!(ring.get::<(u64, Vec<u8>)>(Deadline::now()).unwrap().0, 7);
        // ...and so is one behind the head: no phantom item.
        h.consumer_own.0.tail_seen.store(0, Ordering::Relaxed);
        assert!(matches!(
            ring.get::<(u64, Vec<u8>)>(Deadline::now()),
            Err(Error::Empty)
        ));
        assert_eq!(ring.qsize(), 0);
    }

    /// A consumer killed in the middle of a rewind (after publishing its skip record, before
    /// moving the head) leaves a state the next consumer must read correctly: no phantom item,
    /// an exact size.
    #[test]
    fn a_rewind_cut_between_its_two_stores_leaves_no_phantom_items() {
        let ring = small_ring();
        // Fill past `soft` and drain, twice, so stale records lie in the area.
        for lap in 0..2u64 {
            for i in 0..60u64 {
                ring.put(&(lap * 1000 + i, vec![0u8; 100]), Deadline::now())
                    .unwrap();
            }
            for _ in 0..60 {
                ring.get::<(u64, Vec<u8>)>(Deadline::now()).unwrap();
            }
        }
        // Put some items, consume them all without the automatic rewind, then do half of one.
        for i in 0..50u64 {
            ring.put(&(2000 + i, vec![0u8; 100]), Deadline::now())
                .unwrap();
        }
        let h = ring.h();
        let tail = h.producer.0.tail.load(Ordering::SeqCst);
        h.consumer.0.head.store(tail, Ordering::SeqCst);
        assert!(pos(tail) % ring.capacity() >= 1 << 12);
        ring.publish_skip(tail);
        // The state a killed consumer leaves: a skip record between head and tail.
        assert_eq!(ring.qsize(), 0);
        assert!(matches!(
            ring.get::<(u64, Vec<u8>)>(Deadline::now()),
            Err(Error::Empty)
        ));
        for i in 0..5u64 {
            ring.put(&(3000 + i, vec![0u8; 100]), Deadline::now())
                .unwrap();
        }
        assert_eq!(ring.qsize(), 5);
        for i in 0..5u64 {
            assert_eq!(
                ring.get::<(u64, Vec<u8>)>(Deadline::now()).unwrap().0,
                3000 + i
            );
        }
        assert_eq!(ring.qsize(), 0);
        assert!(matches!(
            ring.get::<(u64, Vec<u8>)>(Deadline::now()),
            Err(Error::Empty)
        ));
    }

    /// The same cut with items put right after it, before any consumer looked.
    #[test]
    fn items_put_right_after_a_cut_rewind_come_out_in_order() {
        let ring = small_ring();
        for i in 0..60u64 {
            ring.put(&i, Deadline::now()).unwrap();
            ring.get::<u64>(Deadline::now()).unwrap();
        }
        for i in 0..40u64 {
            ring.put(&(i, vec![7u8; 200]), Deadline::now()).unwrap();
        }
        let h = ring.h();
        let tail = h.producer.0.tail.load(Ordering::SeqCst);
        h.consumer.0.head.store(tail, Ordering::SeqCst);
        ring.publish_skip(tail);
        for i in 0..3u64 {
            ring.put(&(100 + i, vec![8u8; 200]), Deadline::now())
                .unwrap();
        }
        for i in 0..3u64 {
            let (n, bytes) = ring.get::<(u64, Vec<u8>)>(Deadline::now()).unwrap();
            assert_eq!((n, bytes[0]), (100 + i, 8));
        }
        assert_eq!(ring.qsize(), 0);
    }
}
