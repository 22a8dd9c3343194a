//! Maps random bytes onto a protocol's alphabet, so the fuzzer spends its time in deep
//! states instead of on syntax errors: each input byte picks a token, raw bytes stay possible.

/// Builds input from `data`: a byte below `tokens.len()` emits that token; 0xFF copies the
/// next byte raw; any other byte is emitted as itself.
pub fn expand(data: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    let mut bytes = data.iter();
    while let Some(&byte) = bytes.next() {
        if byte == 0xFF {
            if let Some(&raw) = bytes.next() {
                out.push(raw);
            }
        } else if let Some(token) = tokens.get(usize::from(byte)) {
            out.extend_from_slice(token);
        } else {
            out.push(byte);
        }
    }
    out
}
