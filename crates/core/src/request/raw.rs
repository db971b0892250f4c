//! JSON members read as borrowed slices of the body ([`Raw`]), their types,
//! and the errors that name them.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

use crate::error::GatewayError;

/// The JSON type of a value, from its first byte (the value is well formed:
/// the whole body was parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    pub(super) fn of(text: &str) -> Kind {
        match text.trim_start().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A member's JSON text as the client wrote it, borrowed from the body
/// (`null` included: an `Option<&RawValue>` would read `null` as absent).
/// Nothing is built for it until it is checked.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Raw<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|r| Raw(Some(r)))
    }
}

impl<'a> Raw<'a> {
    pub(super) fn text(self) -> Option<&'a str> {
        self.0.map(RawValue::get)
    }

    /// The value's type; `None` when the member is absent.
    pub(super) fn kind(self) -> Option<Kind> {
        self.text().map(Kind::of)
    }

    /// The value as a string (borrowed unless it holds escapes); `None` when
    /// it is not one.
    pub(super) fn string(self) -> Option<Cow<'a, str>> {
        let text = self.text()?;
        match serde_json::from_str::<&str>(text) {
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        }
    }

    /// `null` or absent.
    pub(super) fn is_none(self) -> bool {
        matches!(self.kind(), None | Some(Kind::Null))
    }
}

pub(super) fn wrong_type(param: &str, expected: &str, got: Kind) -> GatewayError {
    GatewayError::invalid(format!("`{param}` must be {expected}, got {}.", got.name()), Some(param))
}

pub(super) fn not_json(e: serde_json::Error) -> GatewayError {
    GatewayError::invalid(format!("The request body is not valid JSON: {e}."), None)
}

/// A body's text when it is a JSON object; otherwise the 400 saying what
/// it is instead (not UTF-8, empty, not JSON, another JSON type).
pub(super) fn object_text(raw: &[u8]) -> Result<&str, GatewayError> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(GatewayError::invalid("The request body is not valid UTF-8.", None));
    };
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(GatewayError::invalid("The request body is empty; send a JSON object.", None));
    }
    let kind = Kind::of(text);
    if kind != Kind::Object {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(not_json)?;
        return Err(GatewayError::invalid(
            format!("The request body must be a JSON object, got {}.", kind.name()),
            None,
        ));
    }
    Ok(text)
}

/// `model`: a non-empty string.
pub(super) fn required_model(model: Raw<'_>) -> Result<String, GatewayError> {
    match (model.kind(), model.string()) {
        (Some(Kind::String), Some(s)) if !s.trim().is_empty() => Ok(s.into_owned()),
        (Some(Kind::String), _) => Err(GatewayError::invalid("`model` must not be empty.", Some("model"))),
        (Some(other), _) => Err(wrong_type("model", "a string", other)),
        (None, _) => Err(GatewayError::invalid("Missing required parameter: `model`.", Some("model"))),
    }
}

pub(super) fn optional_positive_int(value: Raw<'_>, param: &str) -> Result<Option<u64>, GatewayError> {
    let Some(text) = value.text().filter(|_| !value.is_none()) else { return Ok(None) };
    match serde_json::from_str::<u64>(text) {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(GatewayError::invalid(format!("`{param}` must be a positive integer."), Some(param))),
    }
}

/// Calls `f` with each element of the JSON array `array`, in order, without
/// collecting them; returns how many there were.
pub(super) fn for_each<'a>(
    array: &'a str,
    f: impl FnMut(usize, Raw<'a>) -> Result<(), GatewayError>,
) -> Result<usize, GatewayError> {
    struct Each<F> {
        f: F,
        n: usize,
        error: Option<GatewayError>,
    }
    impl<'a, F: FnMut(usize, Raw<'a>) -> Result<(), GatewayError>> Visitor<'a> for &mut Each<F> {
        type Value = ();
        fn expecting(&self, out: &mut std::fmt::Formatter) -> std::fmt::Result {
            out.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Raw<'a>>()? {
                if let Err(e) = (self.f)(self.n, item) {
                    self.error = Some(e);
                    return Err(serde::de::Error::custom("refused"));
                }
                self.n += 1;
            }
            Ok(())
        }
    }
    let mut each = Each { f, n: 0, error: None };
    let result = Deserializer::deserialize_seq(&mut serde_json::Deserializer::from_str(array), &mut each);
    match (result, each.error) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(not_json(e)),
        (Ok(()), None) => Ok(each.n),
    }
}
