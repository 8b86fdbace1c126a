//! Random tokens for client ids and stream epochs.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A random string of `len` lowercase alphanumerics.
pub(crate) fn token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
