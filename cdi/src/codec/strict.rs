//! Deserialisers that read the way the reference library does (Go's `encoding/json` behind
//! `sigs.k8s.io/yaml`): `null` for an optional list or map means empty, integers and booleans
//! must not be quoted strings, and a map may not repeat a key (JSON included).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// `null` reads as the type's default (an empty list or map, or empty edits).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string-to-string map that rejects repeated keys; `null` reads as empty.
pub(crate) fn annotations<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Default)]
    struct Annotations(BTreeMap<String, String>);
    impl<'de> Deserialize<'de> for Annotations {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Annotations::default())
        }
    }
    impl<'de> Visitor<'de> for Annotations {
        type Value = Self;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of strings to strings")
        }

        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self, A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if self.0.contains_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate annotation key {key:?}"
                    )));
                }
                let value = map.next_value::<String>()?;
                self.0.insert(key, value);
            }
            Ok(self)
        }
    }
    nullable::<D, Annotations>(deserializer).map(|annotations| annotations.0)
}

/// An integer of type `T` written as a number, never as a quoted string.
struct Integer<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for Integer<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an integer in the range of {}",
            std::any::type_name::<T>()
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        i64::try_from(v)
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Other("a large integer"), &self))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        u64::try_from(v)
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Other("a large integer"), &self))
    }
}

/// An integer of type `T`, read with [`Integer`].
struct Number<T>(T);

impl<'de, T> Deserialize<'de> for Number<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Integer(PhantomData)).map(Number)
    }
}

/// An optional `i64`; `null` reads as absent.
pub(crate) fn i64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Number<i64>>::deserialize(d)?.map(|number| number.0))
}

/// An optional `u32`; `null` reads as absent.
pub(crate) fn u32_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<Number<u32>>::deserialize(d)?.map(|number| number.0))
}

/// A list of `u32` written as numbers; `null` reads as empty.
pub(crate) fn u32_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Default)]
    struct List(Vec<u32>);
    impl<'de> Deserialize<'de> for List {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_seq(List::default())
        }
    }
    impl<'de> Visitor<'de> for List {
        type Value = Self;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of integers in the range of u32")
        }

        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self, A::Error> {
            while let Some(Number(value)) = seq.next_element()? {
                self.0.push(value);
            }
            Ok(self)
        }
    }
    nullable::<D, List>(d).map(|list| list.0)
}

/// A boolean written as `true`/`false` (YAML 1.1 spellings included), never quoted;
/// `null` reads as `false`.
pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Default)]
    struct Bool(bool);
    impl<'de> Deserialize<'de> for Bool {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Bool::default())
        }
    }
    impl<'de> Visitor<'de> for Bool {
        type Value = Self;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self, E> {
            Ok(Bool(v))
        }
    }
    nullable::<D, Bool>(d).map(|b| b.0)
}
