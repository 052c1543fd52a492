//! The worker side: what a pool's worker process runs, the messages it exchanges with the
//! pool, and the type-erased chunk runners that let one non-generic worker loop run any
//! `fn(A) -> R`.
//!
//! A task crosses as a [`Runner`] (a monomorphization of [`run_chunk`] for the task's kind,
//! sent as a [`Function`], i.e. its identity in this binary) and a payload: the encoded pair of
//! the task's own `Function` and its chunk of arguments. The worker calls the runner on the
//! payload; the runner decodes, calls the function on each item under `catch_unwind`, and
//! encodes the results. So the function identity crosses once per chunk, not once per item,
//! and the worker survives every panic.
//!
//! Every result is written to the pool before the next task starts, so when a worker dies the
//! pool knows exactly which task it was running: the first one of its batch without a result.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::fmt::Display;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mp_core::codec::{self, Bytes};
use mp_core::wirebuf::OwnedBytes;
use mp_core::{Connection, FnPtr, Function};
use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Failure;

/// The erased shape of every chunk runner: an encoded `(Function<F>, Vec<Args>)` in, results out.
pub(crate) type Runner = fn(Vec<u8>) -> RunOutput;

/// What a runner returns for one chunk.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct RunOutput {
    /// The encoded `Ok` results, in item order (a `Vec<Ok>`, without the failed items);
    /// `None` when the chunk as a whole failed (`first_failure` says why).
    pub(crate) out: Option<Payload>,
    /// Whether every item succeeded.
    pub(crate) all_ok: bool,
    /// The first item's failure, in item order (what a `map` reports).
    pub(crate) first_failure: Option<Failure>,
    /// The items that failed (their index in the chunk, in order) and why.
    pub(crate) failures: Vec<(u32, Failure)>,
}

impl RunOutput {
    /// The output of a chunk without items.
    pub(crate) fn empty() -> RunOutput {
        RunOutput {
            // An empty MessagePack array.
            out: Some(Payload::from_vec(vec![0x90])),
            all_ok: true,
            first_failure: None,
            failures: Vec::new(),
        }
    }

    /// What a chunk's place holds once a last `get` has decoded and freed it (nothing is
    /// allocated for it).
    pub(crate) fn taken() -> RunOutput {
        RunOutput {
            out: None,
            all_ok: false,
            first_failure: None,
            failures: Vec::new(),
        }
    }
}

/// The encoded results of a chunk (a MessagePack array), as one `bin` on the wire: the bytes
/// of `buf` from `start` to `end`. A worker keeps room before them for the envelope of its
/// `Done` message, so the message goes out from the same buffer, without a copy (see
/// [`send_done`]); the pool keeps them in the frame they came in (see [`decode_from_worker`]).
pub(crate) struct Payload {
    /// A worker's own buffer (`Heap`), or the frame the pool read it in.
    buf: OwnedBytes,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.end - self.start)
    }
}

impl Payload {
    /// All of `buf`.
    pub(crate) fn from_vec(buf: Vec<u8>) -> Payload {
        let end = buf.len();
        Payload {
            buf: OwnedBytes::Heap(buf),
            start: 0,
            end,
        }
    }

    /// `buf` from `start` on, with room for an envelope before `start`.
    fn after_room(buf: Vec<u8>, start: usize) -> Payload {
        let end = buf.len();
        Payload {
            buf: OwnedBytes::Heap(buf),
            start,
            end,
        }
    }

    /// The encoded results.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes::deserialize(d).map(|b| Payload::from_vec(b.0))
    }
}

/// Bytes kept before a chunk's results for the envelope of its `Done` message: at most 22
/// (`{"Done": [id, [` and the `bin` header, in MessagePack).
const ENVELOPE_ROOM: usize = 32;

/// Sends a task's results, as `FromWorker::Done { id, output }`.
///
/// rmp-serde writes a struct variant as a one-entry map from its name to the array of its
/// fields, and a struct as the array of its fields; `output.out` is `RunOutput`'s first
/// field. So the message is: the envelope (`{"Done": [id, [`, the `bin` header of the
/// results), the results, then `all_ok`, `first_failure` and `failures` each as itself. The
/// worker writes the envelope into the room before the results and the rest after them, and
/// sends the one buffer: a chunk's results are not copied into a message of their own (112
/// KB for a chunk of `pool_map_100k`; a new buffer each time, since a connection keeps at most
/// 64 KiB of scratch). Output without that room (a failed chunk) goes through `send`.
/// `done_is_encoded_as_serde_would` checks the bytes against rmp-serde's own.
pub(crate) fn send_done(conn: &mut Connection, id: u64, output: RunOutput) -> mp_core::Result<()> {
    match done_in_place(id, output)? {
        Ok((buf, begin)) => conn.send_bytes(&buf[begin..]),
        Err(output) => conn.send(&FromWorker::Done { id, output }),
    }
}

/// The message of [`send_done`] in the buffer of `output`'s results, and where it begins; or
/// `output` back when its results have no room for the envelope.
fn done_in_place(
    id: u64,
    output: RunOutput,
) -> mp_core::Result<std::result::Result<(Vec<u8>, usize), RunOutput>> {
    let RunOutput {
        out,
        all_ok,
        first_failure,
        failures,
    } = output;
    let (mut buf, start, end) = match out {
        Some(Payload {
            buf: OwnedBytes::Heap(buf),
            start,
            end,
        }) if start >= ENVELOPE_ROOM && end == buf.len() => (buf, start, end),
        out => {
            return Ok(Err(RunOutput {
                out,
                all_ok,
                first_failure,
                failures,
            }))
        }
    };
    let len = end - start;
    let mut envelope = Vec::with_capacity(ENVELOPE_ROOM);
    envelope.extend_from_slice(&[0x81, 0xa4, b'D', b'o', b'n', b'e', 0x92]);
    codec::encode_into(&id, &mut envelope)?;
    envelope.push(0x94);
    bin_len(len, &mut envelope)?;
    let begin = start - envelope.len();
    buf[begin..start].copy_from_slice(&envelope);
    codec::encode_into(&all_ok, &mut buf)?;
    codec::encode_into(&first_failure, &mut buf)?;
    codec::encode_into(&failures, &mut buf)?;
    Ok(Ok((buf, begin)))
}

/// A kind of task: how its function is called on one item.
pub(crate) trait Kind: 'static {
    /// The function pointer type.
    type F: FnPtr;
    /// One item's arguments.
    type Args: Serialize + DeserializeOwned + 'static;
    /// One item's successful result.
    type Ok: Serialize + DeserializeOwned + 'static;
    /// Calls `f` on one item; `Err` carries the `Display` of an error the function returned.
    fn call(f: Self::F, args: Self::Args) -> Result<Self::Ok, String>;
}

/// `fn(A) -> R`.
pub(crate) struct Plain<A, R>(PhantomData<fn(A) -> R>);
/// `fn(A) -> Result<T, E>`, whose `Err` is the task's failure.
pub(crate) struct Fallible<A, T, E>(PhantomData<fn(A) -> Result<T, E>>);
/// `fn(A, B) -> R` over tuples.
pub(crate) struct Star2<A, B, R>(PhantomData<fn(A, B) -> R>);

impl<A, R> Kind for Plain<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type F = fn(A) -> R;
    type Args = A;
    type Ok = R;
    fn call(f: Self::F, args: A) -> Result<R, String> {
        Ok(f(args))
    }
}

impl<A, T, E> Kind for Fallible<A, T, E>
where
    A: Serialize + DeserializeOwned + 'static,
    T: Serialize + DeserializeOwned + 'static,
    E: Display + 'static,
{
    type F = fn(A) -> Result<T, E>;
    type Args = A;
    type Ok = T;
    fn call(f: Self::F, args: A) -> Result<T, String> {
        f(args).map_err(|e| e.to_string())
    }
}

impl<A, B, R> Kind for Star2<A, B, R>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type F = fn(A, B) -> R;
    type Args = (A, B);
    type Ok = R;
    fn call(f: Self::F, (a, b): (A, B)) -> Result<R, String> {
        Ok(f(a, b))
    }
}

/// The runner of kind `K`, to send with a task.
pub(crate) fn runner<K: Kind>() -> Function<Runner> {
    Function::new(run_chunk::<K> as Runner)
}

/// Encodes the payload of a chunk: `f`'s identity and the arguments. Arguments holding
/// handles are refused (as CPython refuses to pickle a `Queue` into a task).
pub(crate) fn encode_chunk<F: FnPtr, A: Serialize + 'static>(
    f: F,
    items: &[A],
) -> crate::Result<Vec<u8>> {
    encode_chunk_into(
        f,
        items,
        Vec::with_capacity(chunk_capacity::<A>(items.len())),
    )
}

/// Room for the encoding of `items` arguments of type `A` at first: MessagePack takes at most
/// a byte more than the value for a number, so a chunk of numbers is encoded without growing
/// its buffer (growing a chunk of 12 500 `u64` from 64 bytes took 10 reallocations, copies of
/// up to 32 KiB each, and a page fault for every page of every copy). Capped at 1 MiB: larger
/// chunks grow as before.
pub(crate) fn chunk_capacity<A>(items: usize) -> usize {
    items
        .saturating_mul(std::mem::size_of::<A>() + 2)
        .saturating_add(64)
        .min(1 << 20)
}

/// [`encode_chunk`] into `buf` (cleared first), which the caller sized: a map sizes each chunk
/// after the one before it.
pub(crate) fn encode_chunk_into<F: FnPtr, A: Serialize + 'static>(
    f: F,
    items: &[A],
    mut buf: Vec<u8>,
) -> crate::Result<Vec<u8>> {
    buf.clear();
    let (bytes, fds) = mp_core::handle::collect_handles(|| {
        if codec::ints::is_int::<A>() {
            // The pair `(f, items)` as rmp-serde writes it (an array of two), the integers by
            // the fast path (`codec::ints`).
            buf.push(0x92);
            codec::encode_into(&Function::new(f), &mut buf)?;
            if codec::ints::encode_ints(items, &mut buf) {
                return Ok(buf);
            }
            buf.clear();
        }
        codec::encode_into(&(Function::new(f), items), &mut buf).map(|()| buf)
    });
    if !fds.is_empty() {
        return Err(crate::Error::InvalidArgument(
            "task arguments cannot hold handles (connections, locks, queues); pass those to \
             the workers through the pool's initializer"
                .into(),
        ));
    }
    Ok(bytes?)
}

thread_local! {
    /// Where the last panic of this thread happened (set by the worker's panic hook).
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records each panic's location instead of printing it: a task's panic is reported to the
/// caller, as CPython reports a task's exception.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(ToString::to_string);
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
}

/// The failure for a caught panic's payload.
fn panic_failure(payload: Box<dyn std::any::Any + Send>) -> Failure {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    };
    Failure {
        panicked: true,
        message,
        location: PANIC_AT.with(|p| p.borrow_mut().take()),
    }
}

fn plain_failure(message: String) -> Failure {
    Failure {
        panicked: false,
        message,
        location: None,
    }
}

/// The header of a MessagePack array of `n` items, in its 5-byte form (`array 32`), which a
/// decoder takes for any length: written as a placeholder before the items are counted, then
/// filled in.
fn array_header(n: u32) -> [u8; 5] {
    let [a, b, c, d] = n.to_be_bytes();
    [0xdd, a, b, c, d]
}

/// A chunk run while its arguments are decoded: each item is decoded, called and its result
/// encoded in turn, so that neither the arguments nor the results of a chunk are ever held as
/// a vector (two allocations and two passes over the chunk fewer, and, in a forked worker,
/// fewer pages to copy on write).
struct Streamed<K> {
    /// [`ENVELOPE_ROOM`] bytes, then the `Ok` results, in item order, as one MessagePack
    /// array.
    out: Vec<u8>,
    /// The items that failed: their index in the chunk and why, in order.
    failures: Vec<(u32, Failure)>,
    /// Why a result could not be encoded, if one could not.
    encode_error: Option<String>,
    /// How many results `out` holds.
    ok: u32,
    /// The index of the next item.
    index: u32,
    _k: PhantomData<fn() -> K>,
}

impl<K: Kind> Streamed<K> {
    /// A run of a chunk said to hold `items` items (room for their results, capped).
    fn new(items: usize) -> Self {
        // Room for the results as for a chunk of arguments (`chunk_capacity`): a chunk of
        // numbers never grows its buffer. The count is the array's header, from the pool,
        // and the room is capped whatever it says.
        let mut out = Vec::with_capacity(ENVELOPE_ROOM + 5 + chunk_capacity::<K::Ok>(items));
        out.resize(ENVELOPE_ROOM, 0);
        out.extend_from_slice(&array_header(0));
        Streamed {
            out,
            failures: Vec::new(),
            encode_error: None,
            ok: 0,
            index: 0,
            _k: PhantomData,
        }
    }

    /// Calls `f` on the next item, under `catch_unwind`, and encodes its result.
    fn run(&mut self, f: K::F, a: K::Args) {
        match catch_unwind(AssertUnwindSafe(|| K::call(f, a))) {
            Ok(Ok(v)) => {
                if self.encode_error.is_none() {
                    if codec::ints::encode_int(&v, &mut self.out) {
                        self.ok += 1;
                    } else {
                        match codec::encode_into(&v, &mut self.out) {
                            Ok(()) => self.ok += 1,
                            Err(e) => self.encode_error = Some(e.to_string()),
                        }
                    }
                }
            }
            Ok(Err(message)) => self.failures.push((self.index, plain_failure(message))),
            Err(payload) => self.failures.push((self.index, panic_failure(payload))),
        }
        self.index = self.index.wrapping_add(1);
    }

    /// The run, its results' array header filled in.
    fn finish(mut self) -> Self {
        self.out[ENVELOPE_ROOM..ENVELOPE_ROOM + 5].copy_from_slice(&array_header(self.ok));
        self
    }
}

impl<'de, K: Kind> Deserialize<'de> for Streamed<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(2, ChunkVisitor::<K>(PhantomData))
    }
}

/// Visits a chunk's payload: `(Function<K::F>, [args...])`.
struct ChunkVisitor<K>(PhantomData<fn() -> K>);

impl<'de, K: Kind> Visitor<'de> for ChunkVisitor<K> {
    type Value = Streamed<K>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a function and its chunk of arguments")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let f: Function<K::F> = seq
            .next_element()?
            .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
        seq.next_element_seed(ItemsSeed::<K> {
            f: f.get(),
            _k: PhantomData,
        })?
        .ok_or_else(|| serde::de::Error::invalid_length(1, &self))
    }
}

/// Runs the items of a chunk as they are decoded.
struct ItemsSeed<K: Kind> {
    f: K::F,
    _k: PhantomData<fn() -> K>,
}

impl<'de, K: Kind> DeserializeSeed<'de> for ItemsSeed<K> {
    type Value = Streamed<K>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, K: Kind> Visitor<'de> for ItemsSeed<K> {
    type Value = Streamed<K>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a chunk of arguments")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut run = Streamed::<K>::new(seq.size_hint().unwrap_or(0));
        while let Some(a) = seq.next_element::<K::Args>()? {
            run.run(self.f, a);
        }
        Ok(run.finish())
    }
}

/// Runs one chunk of kind `K` (in a worker): decodes the function and the arguments, calls it
/// on each item under `catch_unwind` as it is decoded, encodes the results as they come.
fn run_chunk<K: Kind>(payload: Vec<u8>) -> RunOutput {
    let whole = |message: String| RunOutput {
        out: None,
        all_ok: false,
        first_failure: Some(plain_failure(message)),
        failures: Vec::new(),
    };
    let decoded = match ints_chunk::<K>(&payload) {
        Some(run) => run,
        None => codec::decode::<Streamed<K>>(&payload).map_err(|e| e.to_string()),
    };
    let run = match decoded {
        Ok(v) => v,
        Err(e) => return whole(format!("the worker could not decode the task: {e}")),
    };
    if let Some(e) = run.encode_error {
        return whole(format!("the worker could not encode the result: {e}"));
    }
    RunOutput {
        out: Some(Payload::after_room(run.out, ENVELOPE_ROOM)),
        all_ok: run.failures.is_empty(),
        first_failure: run.failures.first().map(|(_, f)| f.clone()),
        failures: run.failures,
    }
}

/// The smallest payload [`ints_chunk`] reads by the fast path.
const INTS_AT: usize = 256;

/// Runs a chunk whose arguments are integers read by the fast path (`codec::ints`), as
/// [`ItemsSeed`] runs any other: `None` when `K::Args` is no integer type or the payload does
/// not begin as the pool writes it (then serde decodes it, and says what is wrong);
/// `Some(Err)` when an argument is not an integer of the type (as serde would fail, after the
/// items before it ran).
fn ints_chunk<K: Kind>(payload: &[u8]) -> Option<Result<Streamed<K>, String>> {
    // The fast path pays from a few dozen items on: for fewer, serde's one pass costs less
    // than reading the function apart from the items.
    if !codec::ints::is_int::<K::Args>()
        || payload.len() < INTS_AT
        || payload.first() != Some(&0x92)
    {
        return None;
    }
    let (f, used) = codec::decode_prefix::<Function<K::F>>(&payload[1..]).ok()?;
    let mut at = 1 + used;
    let n = codec::ints::read_array_len(payload, &mut at)?;
    let f = f.get();
    let mut run = Streamed::<K>::new(n);
    for i in 0..n {
        match codec::ints::read_as::<K::Args>(payload, &mut at) {
            Some(a) => run.run(f, a),
            None => {
                return Some(Err(format!(
                    "argument {i} of the chunk is not a {}",
                    std::any::type_name::<K::Args>()
                )))
            }
        }
    }
    if at != payload.len() {
        return Some(Err("bytes after the chunk's arguments".into()));
    }
    Some(Ok(run.finish()))
}

/// What an initializer's return value says: `()` always succeeds, a `Result` fails with its
/// `Err`'s `Display` (Python: an exception raised by the `initializer`).
pub trait InitOutcome: 'static {
    /// `Ok` or the error's message.
    fn into_outcome(self) -> Result<(), String>;
}

impl InitOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display + 'static> InitOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

// ----- messages -----

/// One task as a worker receives it.
#[derive(Deserialize)]
pub(crate) struct TaskWire {
    id: u64,
    runner: Function<Runner>,
    payload: Bytes,
}

/// One task as the pool sends it (the same encoding as [`TaskWire`], borrowing the payload).
#[derive(Serialize)]
pub(crate) struct TaskWireRef<'a> {
    pub(crate) id: u64,
    pub(crate) runner: Function<Runner>,
    pub(crate) payload: BytesRef<'a>,
}

/// The message `ToWorkerRef::Tasks(tasks)` without its payloads: the bytes that go before
/// each task's payload, all in one buffer, and where each task's part ends in it. The message
/// is the part of the first task, its payload, the part of the second, its payload, and so
/// on, so the payloads are sent from where they are, by a gather write, instead of being
/// copied into the message (62 KB each for a chunk of `pool_map_100k`).
///
/// rmp-serde writes the newtype variant as the one-entry map from its name to the vector,
/// the vector as an array, and each `TaskWireRef` as the array of its fields, the payload
/// last, as a `bin`. `tasks_are_encoded_as_serde_would` checks the bytes against its own.
pub(crate) fn tasks_heads(tasks: &[TaskWireRef<'_>]) -> mp_core::Result<(Vec<u8>, Vec<usize>)> {
    // A `Function` encodes only while it is being sent, as `Connection::send` sends it; it
    // holds no handle.
    mp_core::handle::collect_handles(|| tasks_heads_inner(tasks)).0
}

fn tasks_heads_inner(tasks: &[TaskWireRef<'_>]) -> mp_core::Result<(Vec<u8>, Vec<usize>)> {
    let mut heads = Vec::with_capacity(16 + 48 * tasks.len());
    heads.extend_from_slice(&[0x81, 0xa5, b'T', b'a', b's', b'k', b's']);
    array_len(tasks.len(), &mut heads)?;
    let mut ends = Vec::with_capacity(tasks.len());
    for t in tasks {
        heads.push(0x93);
        codec::encode_into(&t.id, &mut heads)?;
        codec::encode_into(&t.runner, &mut heads)?;
        bin_len(t.payload.0.len(), &mut heads)?;
        ends.push(heads.len());
    }
    Ok((heads, ends))
}

/// A MessagePack array header for `n` items, in its shortest form.
fn array_len(n: usize, out: &mut Vec<u8>) -> mp_core::Result<()> {
    let n = u32::try_from(n).map_err(|_| {
        mp_core::Error::Codec("more than 2^32 items, more than one MessagePack array holds".into())
    })?;
    codec::ints::write_array_len(n, out);
    Ok(())
}

/// The message of `tasks` as the pieces of a gather write: each task's part of `heads` (see
/// [`tasks_heads`], which gave `heads` and `ends`), then its payload, in order.
pub(crate) fn tasks_parts<'a>(
    tasks: &[TaskWireRef<'a>],
    heads: &'a [u8],
    ends: &[usize],
) -> Vec<&'a [u8]> {
    let mut parts = Vec::with_capacity(2 * tasks.len() + 1);
    let mut begin = 0;
    for (t, &end) in tasks.iter().zip(ends) {
        parts.push(&heads[begin..end]);
        parts.push(t.payload.0);
        begin = end;
    }
    parts.push(&heads[begin..]);
    parts
}

/// A MessagePack `bin` header for `n` bytes, in its shortest form.
fn bin_len(n: usize, out: &mut Vec<u8>) -> mp_core::Result<()> {
    if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xc4, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xc5);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xc6);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        return Err(mp_core::Error::Codec(
            "a payload over 4 GiB, more than one MessagePack bin holds".into(),
        ));
    }
    Ok(())
}

/// Borrowed bytes that encode as one MessagePack `bin`, like [`Bytes`].
pub(crate) struct BytesRef<'a>(pub(crate) &'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Pool to worker.
#[derive(Deserialize)]
enum ToWorker {
    Tasks(Vec<TaskWire>),
    Skip(Vec<u64>),
    Stop,
}

/// Pool to worker, as sent (variants in [`ToWorker`]'s order).
#[derive(Serialize)]
pub(crate) enum ToWorkerRef<'a> {
    /// Small batches; large ones are sent in parts (`tasks_heads`), which its test checks
    /// against this.
    Tasks(Vec<TaskWireRef<'a>>),
    Skip(&'a [u64]),
    Stop,
}

/// Worker to pool.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker {
    /// The initializer (if any) succeeded; tasks may come.
    Ready,
    /// The initializer failed or panicked; the worker exits.
    InitFailed(Failure),
    /// A task's results.
    Done { id: u64, output: RunOutput },
    /// A task the pool cancelled before it started, not run.
    Skipped { id: u64 },
    /// The worker leaves after its last result (maxtasksperchild, memory cap); tasks of its
    /// batch after that one were not started.
    Retire,
}

/// [`FromWorker`] as the pool decodes it: the same encoding, with a chunk's results borrowed
/// from the frame instead of copied out of it (variants and fields in `FromWorker`'s order).
#[derive(Deserialize)]
enum FromWorkerWire<'a> {
    Ready,
    InitFailed(Failure),
    Done {
        id: u64,
        #[serde(borrow)]
        output: RunOutputWire<'a>,
    },
    Skipped {
        id: u64,
    },
    Retire,
}

/// [`RunOutput`] with its results borrowed.
#[derive(Deserialize)]
struct RunOutputWire<'a> {
    #[serde(borrow)]
    out: Option<Borrowed<'a>>,
    all_ok: bool,
    first_failure: Option<Failure>,
    failures: Vec<(u32, Failure)>,
}

/// A `bin` borrowed from the bytes being decoded.
struct Borrowed<'a>(&'a [u8]);

impl<'de: 'a, 'a> Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the encoded results, as bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V).map(Borrowed)
    }
}

/// Decodes a worker's message from `frame[range]` (a frame read by the pool, see
/// `FrameReader::next_frame_owned`), keeping a chunk's results in `frame` where they are
/// instead of copying them out (112 KB for a chunk of `pool_map_100k`).
pub(crate) fn decode_from_worker(
    frame: OwnedBytes,
    range: std::ops::Range<usize>,
) -> mp_core::Result<FromWorker> {
    let Some(bytes) = frame.get(range) else {
        return Err(mp_core::Error::Codec("a frame outside its buffer".into()));
    };
    let wire = codec::decode_seed(PhantomData::<FromWorkerWire<'_>>, bytes)?;
    let (id, out, all_ok, first_failure, failures) = match wire {
        FromWorkerWire::Ready => return Ok(FromWorker::Ready),
        FromWorkerWire::InitFailed(f) => return Ok(FromWorker::InitFailed(f)),
        FromWorkerWire::Skipped { id } => return Ok(FromWorker::Skipped { id }),
        FromWorkerWire::Retire => return Ok(FromWorker::Retire),
        FromWorkerWire::Done { id, output } => {
            // Where the results are in `frame` (they were decoded from it, in place).
            let out = output.out.map(|b| {
                let start = b.0.as_ptr() as usize - frame.as_ptr() as usize;
                start..start + b.0.len()
            });
            (
                id,
                out,
                output.all_ok,
                output.first_failure,
                output.failures,
            )
        }
    };
    let out = out.map(|r| Payload {
        buf: frame,
        start: r.start,
        end: r.end,
    });
    Ok(FromWorker::Done {
        id,
        output: RunOutput {
            out,
            all_ok,
            first_failure,
            failures,
        },
    })
}

/// An initializer and its arguments, as a worker receives them.
pub(crate) type Init<A, R> = (Function<fn(A) -> R>, A);

/// How often a busy worker looks for messages between the tasks of its batch.
const LOOK_EVERY: Duration = Duration::from_micros(100);

/// What a worker process is started with.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
pub(crate) struct WorkerArgs<A: 'static, R: 'static> {
    pub(crate) conn: Connection,
    pub(crate) init: Option<Init<A, R>>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) max_memory: Option<u64>,
}

/// The worker loop (the target of every worker process): runs the initializer, then tasks
/// until the pool says stop or goes away.
pub(crate) fn worker_main<A, R>(args: WorkerArgs<A, R>)
where
    A: Serialize + DeserializeOwned + 'static,
    R: InitOutcome,
{
    install_panic_hook();
    let WorkerArgs {
        mut conn,
        init,
        max_tasks,
        max_memory,
    } = args;
    // No spin while waiting for tasks (`Connection::set_spin`): a worker waits whenever its
    // batch runs out, and a pool usually has as many workers as CPUs, so a spinning worker
    // takes the CPU that the pool's other processes need to feed it (an `imap` of 10 000
    // items took a quarter longer).
    conn.set_spin(Duration::ZERO);
    if let Some((f, a)) = init {
        let f = f.get();
        let outcome = match catch_unwind(AssertUnwindSafe(|| f(a).into_outcome())) {
            Ok(Ok(())) => None,
            Ok(Err(message)) => Some(plain_failure(message)),
            Err(payload) => Some(panic_failure(payload)),
        };
        if let Some(failure) = outcome {
            let _ = conn.send(&FromWorker::InitFailed(failure));
            return;
        }
    }
    if conn.send(&FromWorker::Ready).is_err() {
        return;
    }
    let mut local: VecDeque<TaskWire> = VecDeque::new();
    let mut skip: HashSet<u64> = HashSet::new();
    let mut done: u64 = 0;
    let mut last_look = Instant::now();
    loop {
        // Between the tasks of a batch, look for a Skip or Stop without waiting (every
        // LOOK_EVERY at most: a cancel only matters for tasks that take longer than that).
        let look = local.is_empty()
            || (last_look.elapsed() >= LOOK_EVERY && {
                last_look = Instant::now();
                matches!(conn.try_poll(), Ok(true))
            });
        if look {
            match conn.recv::<ToWorker>() {
                Ok(ToWorker::Tasks(batch)) => local.extend(batch),
                Ok(ToWorker::Skip(ids)) => skip.extend(ids),
                Ok(ToWorker::Stop) | Err(_) => return,
            }
            continue;
        }
        let Some(task) = local.pop_front() else {
            continue;
        };
        if skip.remove(&task.id) {
            if conn.send(&FromWorker::Skipped { id: task.id }).is_err() {
                return;
            }
            continue;
        }
        let run = task.runner.get();
        let (output, _) = mp_core::handle::with_handles(Vec::new(), || run(task.payload.0));
        if send_done(&mut conn, task.id, output).is_err() {
            return;
        }
        done += 1;
        let retire = max_tasks.is_some_and(|n| done >= n)
            || max_memory.is_some_and(|cap| resident_bytes().is_some_and(|rss| rss > cap));
        if retire {
            let _ = conn.send(&FromWorker::Retire);
            return;
        }
    }
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> Failure {
        Failure {
            panicked: true,
            message: message.into(),
            location: Some("src/lib.rs:1:1".into()),
        }
    }

    /// The bytes `send_done` writes in place are the bytes rmp-serde writes for the message,
    /// for results of every `bin` header size and ids of every width, with and without
    /// failures.
    #[test]
    fn done_is_encoded_as_serde_would() {
        for results in [0usize, 1, 200, 255, 256, 70_000] {
            for id in [0u64, 127, 128, 70_000, u64::MAX] {
                for failed in [false, true] {
                    let mut buf = vec![0u8; ENVELOPE_ROOM];
                    buf.extend((0..results).map(|i| i as u8));
                    let failures = if failed {
                        vec![(3, failure("boom")), (7, failure("bang"))]
                    } else {
                        Vec::new()
                    };
                    let output = || RunOutput {
                        out: None,
                        all_ok: !failed,
                        first_failure: failures.first().map(|(_, f)| f.clone()),
                        failures: failures.clone(),
                    };
                    let in_place = RunOutput {
                        out: Some(Payload::after_room(buf.clone(), ENVELOPE_ROOM)),
                        ..output()
                    };
                    let (wire, begin) = done_in_place(id, in_place).unwrap().unwrap();
                    let expected = codec::encode(&FromWorker::Done {
                        id,
                        output: RunOutput {
                            out: Some(Payload::from_vec(buf[ENVELOPE_ROOM..].to_vec())),
                            ..output()
                        },
                    })
                    .unwrap();
                    assert_eq!(&wire[begin..], &expected[..], "{results} bytes, id {id}");
                }
            }
        }
    }

    /// The parts `tasks_heads` and `tasks_parts` make, as the supervisor sends them, are the
    /// bytes rmp-serde writes for the message, for batches of every array header size, payloads of every
    /// `bin` header size and ids of every width.
    #[test]
    fn tasks_are_encoded_as_serde_would() {
        let payloads: Vec<Vec<u8>> = [0usize, 1, 255, 256, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| i as u8).collect())
            .collect();
        for count in [0usize, 1, 5, 15, 16, 40] {
            let wire: Vec<TaskWireRef<'_>> = (0..count)
                .map(|i| TaskWireRef {
                    id: [0u64, 127, 128, 70_000, u64::MAX][i % 5],
                    runner: runner::<Plain<u64, u64>>(),
                    payload: BytesRef(&payloads[i % payloads.len()]),
                })
                .collect();
            let (heads, ends) = tasks_heads(&wire).unwrap();
            let message = tasks_parts(&wire, &heads, &ends).concat();
            let expected =
                mp_core::handle::collect_handles(|| codec::encode(&ToWorkerRef::Tasks(wire)))
                    .0
                    .unwrap();
            assert_eq!(message, expected, "{count} tasks");
        }
    }

    /// What the pool decodes from a frame is what the worker sent, for every message, with
    /// the results read where they are in the frame.
    #[test]
    fn messages_from_workers_decode_in_place() {
        let results: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let messages = vec![
            FromWorker::Ready,
            FromWorker::InitFailed(failure("init")),
            FromWorker::Skipped { id: 9 },
            FromWorker::Retire,
            FromWorker::Done {
                id: u64::MAX,
                output: RunOutput {
                    out: Some(Payload::from_vec(results.clone())),
                    all_ok: false,
                    first_failure: Some(failure("boom")),
                    failures: vec![(3, failure("boom"))],
                },
            },
            FromWorker::Done {
                id: 1,
                output: RunOutput {
                    out: None,
                    all_ok: false,
                    first_failure: Some(failure("whole")),
                    failures: Vec::new(),
                },
            },
        ];
        for m in &messages {
            let bytes = codec::encode(m).unwrap();
            // The message in a frame, as the pool's reader hands it over: after a header.
            let mut frame = mp_core::wirebuf::WireBuf::new();
            frame.extend_from_slice(&[0u8; 4]).unwrap();
            frame.extend_from_slice(&bytes).unwrap();
            let got = decode_from_worker(OwnedBytes::Wire(frame), 4..4 + bytes.len()).unwrap();
            let squashed = |s: String| s.replace(char::is_whitespace, "");
            assert_eq!(squashed(format!("{got:?}")), squashed(format!("{m:?}")));
            if let FromWorker::Done {
                output: RunOutput { out: Some(p), .. },
                ..
            } = &got
            {
                assert_eq!(p.as_slice(), &results[..]);
            }
        }
        // Bytes that are no message, or a range outside the frame: an error.
        assert!(decode_from_worker(OwnedBytes::Heap(vec![0xc1]), 0..1).is_err());
        assert!(decode_from_worker(OwnedBytes::Heap(vec![0x90]), 0..2).is_err());
    }

    /// Output without room for the envelope comes back, to go through `send`.
    #[test]
    fn output_without_room_is_given_back() {
        let output = RunOutput::empty();
        assert!(done_in_place(1, output).unwrap().is_err());
    }
}
