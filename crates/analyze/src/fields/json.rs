//! Reading a JSON record in one pass of serde: keys on a wanted path are
//! descended into, wanted leaves kept as borrowed scalars, everything else
//! skipped with [`IgnoredAny`]; a JSON object written as a string is parsed
//! when a wanted path goes through it. CSV cells are stored the same way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::plan::{Node, Plan};
use super::slots::{Scalar, Slots};

impl Plan {
    /// Reads one JSON value into `out`; `Ok(false)` when it is not an object.
    pub fn extract_json<'de, D: Deserializer<'de>>(&self, de: D, out: &mut Slots<'de>) -> Result<bool, D::Error> {
        MapSeed { plan: self, node: 0, out }.deserialize(de)
    }

    /// Stores a CSV cell (or any text) at a top-level entry: the slot gets the
    /// text; a child entry gets the text parsed as a JSON object, if it is one.
    pub fn put_text<'a>(&self, entry: (Option<u16>, Option<usize>), text: &'a str, out: &mut Slots<'a>) {
        let (slot, child) = entry;
        if let Some(c) = child {
            nested_json(self, c, text, out);
        }
        if let Some(s) = slot {
            if !text.trim().is_empty() {
                out.set(s, Scalar::Str(Cow::Borrowed(text)));
            }
        }
    }
}

fn nested_json<'a>(plan: &Plan, node: usize, text: &str, out: &mut Slots<'a>) {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return;
    }
    let mut tmp = Slots::new();
    let mut de = serde_json::Deserializer::from_str(t);
    if (MapSeed { plan, node, out: &mut tmp }).deserialize(&mut de).is_ok() {
        for i in 0..plan.n_slots {
            if let Some(v) = tmp.v[i].take() {
                out.v[i] = Some(v.into_owned());
            }
        }
    }
}

struct KeySeed<'p> {
    node: &'p Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.node.find(v))
    }
}

struct MapSeed<'p, 's, 'a> {
    plan: &'p Plan,
    node: usize,
    out: &'s mut Slots<'a>,
}

impl<'de> DeserializeSeed<'de> for MapSeed<'_, '_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MapSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let node = &self.plan.nodes[self.node];
        while let Some(found) = map.next_key_seed(KeySeed { node })? {
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let e = &node.entries[i];
            match e.child {
                None => {
                    if let (Some(v), Some(slot)) = (map.next_value_seed(ScalarSeed)?, e.slot) {
                        self.out.set(slot, v);
                    }
                }
                Some(child) => {
                    map.next_value_seed(ValueSeed { plan: self.plan, child, slot: e.slot, out: &mut *self.out })?;
                }
            }
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A value at an entry that has children: an object is descended into, a
/// string holding a JSON object is parsed, a scalar fills the entry's slot.
struct ValueSeed<'p, 's, 'a> {
    plan: &'p Plan,
    child: usize,
    slot: Option<u16>,
    out: &'s mut Slots<'a>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> ValueSeed<'_, '_, 'de> {
    fn scalar(self, v: Scalar<'de>) {
        if let Some(s) = self.slot {
            self.out.set(s, v);
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if let Some(s) = self.slot {
            self.out.set(s, Scalar::Present);
        }
        MapSeed { plan: self.plan, node: self.child, out: self.out }.visit_map(map)?;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.scalar(Scalar::Present);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        nested_json(self.plan, self.child, v, self.out);
        self.scalar(Scalar::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        nested_json(self.plan, self.child, v, self.out);
        self.scalar(Scalar::Str(Cow::Owned(v.to_string())));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(Scalar::U(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(Scalar::I(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.scalar(Scalar::F(v));
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(Scalar::Bool(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::U(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::I(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::F(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(Scalar::Present))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(Scalar::Present))
    }
}
