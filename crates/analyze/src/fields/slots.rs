//! The values kept from one record, by slot.

use std::borrow::Cow;

/// A value kept from a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    /// An object or array (only its presence matters).
    Present,
}

impl Scalar<'_> {
    pub(super) fn into_owned(self) -> Scalar<'static> {
        match self {
            Scalar::Str(s) => Scalar::Str(Cow::Owned(s.into_owned())),
            Scalar::U(v) => Scalar::U(v),
            Scalar::I(v) => Scalar::I(v),
            Scalar::F(v) => Scalar::F(v),
            Scalar::Bool(v) => Scalar::Bool(v),
            Scalar::Present => Scalar::Present,
        }
    }
}

/// Most slots a plan may use (fields × their paths).
pub const MAX_SLOTS: usize = 128;

/// The values found in one record, by slot.
pub struct Slots<'a> {
    pub(super) v: [Option<Scalar<'a>>; MAX_SLOTS],
}

impl<'a> Slots<'a> {
    pub fn new() -> Self {
        Slots { v: [const { None }; MAX_SLOTS] }
    }
    pub(super) fn set(&mut self, slot: u16, value: Scalar<'a>) {
        if let Some(s) = self.v.get_mut(usize::from(slot)) {
            *s = Some(value);
        }
    }
    pub(super) fn take(&mut self, slot: u16) -> Option<Scalar<'a>> {
        self.v.get_mut(usize::from(slot)).and_then(Option::take)
    }
}

impl Default for Slots<'_> {
    fn default() -> Self {
        Self::new()
    }
}
