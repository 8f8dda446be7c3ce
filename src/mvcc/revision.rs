//! A revision names one change: `main` is the store revision of the request
//! that made it, `sub` orders the changes inside that request (a txn may
//! change several keys at one main revision).

/// Encoded as 16 big-endian bytes so LMDB's byte order is revision order.
pub const REVISION_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    pub fn to_bytes(self) -> [u8; REVISION_BYTES] {
        let mut b = [0u8; REVISION_BYTES];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != REVISION_BYTES {
            return None;
        }
        Some(Revision {
            main: i64::from_be_bytes(b[..8].try_into().ok()?),
            sub: i64::from_be_bytes(b[8..].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_revision_order() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 5),
            Revision::new(2, 0),
            Revision::new(300, 1),
        ];
        for w in revs.windows(2) {
            assert!(w[0].to_bytes() < w[1].to_bytes());
            assert_eq!(Revision::from_bytes(&w[0].to_bytes()), Some(w[0]));
        }
    }
}
