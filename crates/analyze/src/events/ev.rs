//! One event: a request's start, end or point in time, its tenant and
//! tokens, in 16 bytes (in memory and on disk).

pub const KIND_END: u32 = 0;
pub const KIND_START: u32 = 1;
pub const KIND_POINT: u32 = 2;
const KIND_SHIFT: u32 = 30;
pub const TENANT_MASK: u32 = (1 << KIND_SHIFT) - 1;
pub(super) const EV_BYTES: usize = 16;

/// One event: time, kind and tenant, and the request's tokens (starts and points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ev {
    pub ts: i64,
    pub key: u32,
    pub tokens: u32,
}

impl Ev {
    pub fn new(ts: i64, kind: u32, tenant: u32, tokens: u64) -> Ev {
        Ev { ts, key: (kind << KIND_SHIFT) | (tenant & TENANT_MASK), tokens: u32::try_from(tokens).unwrap_or(u32::MAX) }
    }
    pub fn kind(&self) -> u32 {
        self.key >> KIND_SHIFT
    }
    pub fn tenant(&self) -> u32 {
        self.key & TENANT_MASK
    }
    pub(super) fn order(&self) -> (i64, u32) {
        (self.ts, self.kind())
    }
    pub(super) fn to_bytes(self) -> [u8; EV_BYTES] {
        let mut b = [0u8; EV_BYTES];
        b[..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..12].copy_from_slice(&self.key.to_le_bytes());
        b[12..].copy_from_slice(&self.tokens.to_le_bytes());
        b
    }
    pub(super) fn from_bytes(b: &[u8; EV_BYTES]) -> Ev {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        let mut key = [0u8; 4];
        key.copy_from_slice(&b[8..12]);
        let mut tokens = [0u8; 4];
        tokens.copy_from_slice(&b[12..]);
        Ev { ts: i64::from_le_bytes(ts), key: u32::from_le_bytes(key), tokens: u32::from_le_bytes(tokens) }
    }
}
