//! The tests' random source: xorshift, seeded from the clock or POSTIE_TEST_SEED, with the seed
//! printed so that a failing run can be replayed.

pub struct Random(u64);

impl Random {
    pub fn new() -> Random {
        let seed = std::env::var("POSTIE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            // xorshift stays at zero from zero.
            | 1;
        eprintln!("random seed {seed} (POSTIE_TEST_SEED={seed} replays it)");
        Random(seed)
    }

    /// A number in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
