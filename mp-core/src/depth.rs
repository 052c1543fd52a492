//! A serde adapter that bounds how deeply deserialization nests, whatever the bytes say.
//!
//! It wraps the deserializer, its visitors and every access (sequences, maps, enums, variants,
//! seeds), and bounds two things:
//!
//! - **Containers**: the arrays, maps and enum variants the value nests, which serde enters
//!   through a visitor's `visit_seq`, `visit_map` or `visit_enum`, at most `containers` deep.
//!   rmp-serde's own depth limit (1024) counts arrays and maps read as sequences and structs,
//!   but not the one-entry map of an enum variant, so a recursive enum (`enum Expr {
//!   Neg(Box<Expr>), .. }`) recursed once per `{0: ...}` in the input, without limit: a peer's
//!   message of a few KiB overflowed the stack and killed the process (found while writing
//!   the `codec` fuzz target; its input is
//!   `fuzz/regressions/codec/deeply_nested_enum_overflows_the_stack`).
//! - **Calls**: some types recurse without consuming any byte: `struct L(Option<Box<L>>)` read
//!   from the single byte `0x01` asks for an option (not nil: `Some`), then a newtype, then an
//!   option again, on the same cached marker, forever, until the stack overflows. So the
//!   deserializers handed back to the type without a container (an option's `Some`, a
//!   newtype's content: a visitor's `visit_some` and `visit_newtype_struct`) are counted too,
//!   at most `calls` deep. Those two, and the three container visits, are the only ways serde
//!   gives a type a deserializer again, so every way of nesting passes a counter; a number,
//!   a string or a unit reads its bytes and returns, and costs no count.
//!
//! Past either limit the decode fails with an error: a peer's message can no longer crash the
//! process, whatever the type. Counting as serde descends costs a counter per container, per
//! option and per newtype; an earlier byte-level walk over the whole message before decoding
//! it (the same container bound) cost about a third of the decode of a vector of numbers, and
//! counting every `deserialize_*` call (each number too) made decoding a vector of 12 500
//! `u64` 1.7 times as slow as rmp-serde's own decode (0.62 ms against 0.37 per 100 000).

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Deserializes `seed`'s value from `d`, failing once containers nest deeper than
/// `containers` or deserialize calls deeper than `calls`.
pub(crate) fn deserialize_seed_limited<'de, S, D>(
    seed: S,
    d: D,
    containers: usize,
    calls: usize,
) -> Result<S::Value, D::Error>
where
    S: DeserializeSeed<'de>,
    D: Deserializer<'de>,
{
    let depth = Depth {
        left: Cell::new(calls),
        containers: Cell::new(containers),
        max_containers: containers,
    };
    seed.deserialize(Limited {
        inner: d,
        depth: &depth,
    })
}

/// The nesting budgets left.
struct Depth {
    left: Cell<usize>,
    containers: Cell<usize>,
    max_containers: usize,
}

impl Depth {
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "the value nests too deeply (a recursive type read from too few bytes)",
            )),
        }
    }

    fn leave(&self) {
        self.left.set(self.left.get() + 1);
    }

    fn enter_container<E: de::Error>(&self) -> Result<(), E> {
        match self.containers.get().checked_sub(1) {
            Some(left) => {
                self.containers.set(left);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "the value nests arrays and maps more than {} deep",
                self.max_containers
            ))),
        }
    }

    fn leave_container(&self) {
        self.containers.set(self.containers.get() + 1);
    }
}

/// The deserializer, counting.
struct Limited<'a, D> {
    inner: D,
    depth: &'a Depth,
}

/// A visitor whose nested deserializers count too.
struct Wrap<'a, V> {
    inner: V,
    depth: &'a Depth,
}

/// A seed whose deserializer counts.
struct Seed<'a, S> {
    inner: S,
    depth: &'a Depth,
}

macro_rules! forward_deserialize {
    ($($method:ident),*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method(Wrap { inner: visitor, depth: self.depth })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit_struct(
            name,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_newtype_struct(
            name,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple(
            len,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple_struct(
            name,
            len,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_enum(
            name,
            variants,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let depth = self.depth;
        depth.enter()?;
        let r = self.inner.visit_some(Limited { inner: d, depth });
        depth.leave();
        r
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let depth = self.depth;
        depth.enter()?;
        let r = self.inner.visit_newtype_struct(Limited { inner: d, depth });
        depth.leave();
        r
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let depth = self.depth;
        depth.enter_container()?;
        let r = self.inner.visit_seq(Wrap { inner: seq, depth });
        depth.leave_container();
        r
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let depth = self.depth;
        depth.enter_container()?;
        let r = self.inner.visit_map(Wrap { inner: map, depth });
        depth.leave_container();
        r
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let depth = self.depth;
        depth.enter_container()?;
        let r = self.inner.visit_enum(Wrap { inner: data, depth });
        depth.leave_container();
        r
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Limited {
            inner: d,
            depth: self.depth,
        })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.inner.next_element_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.inner.next_key_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'a, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'a, A> {
    type Error = A::Error;
    type Variant = Wrap<'a, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let depth = self.depth;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, depth })?;
        Ok((
            value,
            Wrap {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.tuple_variant(
            len,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.struct_variant(
            fields,
            Wrap {
                inner: visitor,
                depth: self.depth,
            },
        )
    }
}
