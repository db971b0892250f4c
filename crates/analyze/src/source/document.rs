//! A JSON document (an array of records, or an object holding arrays of
//! records), streamed by serde record by record.

use std::fmt;
use std::io::{self, BufReader, Read};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ctx::{Ctx, ReadResult};
use crate::agg::{Aggregator, Quality};
use crate::fields::Slots;

struct DocState<'a, 'c> {
    file: usize,
    ctx: &'a Ctx<'c>,
    w: &'a mut Aggregator,
    endpoint: &'a str,
    quality: Quality,
    n: u64,
    io: Option<io::Error>,
}

struct RecordSeed<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let st = self.st;
        st.n += 1;
        st.w.quality.file(st.file).lines += 1;
        let mut slots = Slots::new();
        let is_obj = st.ctx.plan.extract_json(d, &mut slots)?;
        if !is_obj {
            st.quality.malformed(st.file, None, Some(st.n), "not a JSON object".into());
            return Ok(());
        }
        match st.ctx.plan.resolve(&mut slots, st.ctx.at) {
            Ok(rec) => {
                if let Err(e) = st.w.add(&rec, st.file, st.endpoint, st.ctx.spill) {
                    st.io = Some(e);
                    return Err(serde::de::Error::custom("cannot spill events to disk"));
                }
            }
            Err(reason) => st.quality.malformed(st.file, None, Some(st.n), reason),
        }
        Ok(())
    }
}

/// A JSON document: an array of records, or an object whose array values are arrays of records.
struct DocVisitor<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> Visitor<'de> for DocVisitor<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records or an object holding one")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed { st: &mut *self.st })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(ArrayOrSkip { st: &mut *self.st })?;
        }
        Ok(())
    }
}

struct ArrayOrSkip<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> DeserializeSeed<'de> for ArrayOrSkip<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArrayOrSkip<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        DocVisitor { st: self.st }.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

pub(super) fn read_document(
    file: usize,
    r: impl Read,
    ctx: &Ctx<'_>,
    w: &mut Aggregator,
    endpoint: &str,
) -> ReadResult {
    let mut st = DocState { file, ctx, w, endpoint, quality: Quality::default(), n: 0, io: None };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, r));
    let res = de.deserialize_any(DocVisitor { st: &mut st }).and_then(|_| de.end());
    if let Some(e) = st.io.take() {
        return Err(e);
    }
    let error = match res {
        Ok(()) => None,
        Err(e) if e.is_io() => {
            let msg = format!("read error after record {}: {e}; the rest of this input was skipped", st.n);
            Some(msg)
        }
        Err(e) => {
            st.quality.malformed(
                file,
                Some(e.line() as u64),
                Some(st.n.max(1)),
                format!("invalid JSON document: {e}; the rest of this input was skipped"),
            );
            None
        }
    };
    Ok((st.quality, error))
}
