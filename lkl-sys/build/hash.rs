//! The hash behind the cache key.

/// 64-bit FNV-1a over length-prefixed fields: stable across Rust versions (unlike
/// `DefaultHasher`), and unambiguous (the length prefix keeps "ab"+"c" apart from "a"+"bc").
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn field(&mut self, bytes: &[u8]) {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}
