//! Random ids for the request path: UUID v4 from the thread-local userspace
//! RNG (`uuid::Uuid::new_v4` asks the kernel for entropy on every call).

pub fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_4() {
        let u = super::new_uuid();
        assert_eq!(u.get_version_num(), 4);
        assert_ne!(u, super::new_uuid());
    }
}
