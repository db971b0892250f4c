//! Request bodies: strict JSON parsing with serde's message on failure.

use serde::de::DeserializeOwned;

use crate::error::AdminError;

/// Parses a JSON body into `T`, with serde's message (field, line, column) on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(AdminError::BadRequest("The request body is not valid UTF-8.".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            AdminError::BadRequest(format!("Invalid request body: {inner}."))
        } else {
            AdminError::BadRequest(format!("Invalid request body: `{path}`: {inner}."))
        }
    })
}
