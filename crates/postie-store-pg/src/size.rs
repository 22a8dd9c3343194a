//! The CRLF size of one recipient's copy (its headers, then the shared body), from the body's
//! count taken once while it was stored, so that a body is read once whatever the number of
//! recipients.

use postie_store::crlf::CrlfCounter;

/// What the delivery learnt of the body while storing it.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyCount {
    pub counter: CrlfCounter,
    pub first: Option<u8>,
}

impl BodyCount {
    pub fn update(&mut self, piece: &[u8]) {
        if self.first.is_none() {
            self.first = piece.first().copied();
        }
        self.counter.update(piece);
    }
}

/// The size [`CrlfCounter`] would give `headers` followed by the body.
///
/// The two parts add up but for the seam: the headers' final CRLF (added when they do not end
/// with LF) counts only if the body is empty, and a body opening with LF after headers ending
/// with CR makes one CRLF pair rather than a bare LF.
pub(crate) fn crlf_size(headers: &[u8], body: &BodyCount) -> u64 {
    let mut head = CrlfCounter::new();
    head.update(headers);
    if body.counter.raw_size() == 0 {
        return head.crlf_size();
    }
    let head_final_crlf = match headers.last() {
        Some(b'\n') | None => 0,
        Some(_) => 2,
    };
    let seam = u64::from(headers.last() == Some(&b'\r') && body.first == Some(b'\n'));
    head.crlf_size() - head_final_crlf + body.counter.crlf_size() - seam
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counted(body: &[u8], cuts: usize) -> BodyCount {
        let mut count = BodyCount::default();
        for piece in body.chunks(cuts.max(1)) {
            count.update(piece);
        }
        count
    }

    fn whole(headers: &[u8], body: &[u8]) -> u64 {
        let mut counter = CrlfCounter::new();
        counter.update(headers);
        counter.update(body);
        counter.crlf_size()
    }

    #[test]
    fn seams() {
        for (headers, body) in [
            (&b"a\r"[..], &b"\nb"[..]),
            (b"X: y\n", b""),
            (b"X: y", b""),
            (b"X: y", b"body"),
            (b"", b"body\n"),
            (b"", b""),
            (b"\r", b"\n"),
        ] {
            assert_eq!(
                crlf_size(headers, &counted(body, 3)),
                whole(headers, body),
                "{headers:?} + {body:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn matches_the_whole_message(
            headers in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..40),
            body in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..80),
            cuts in 1usize..20,
        ) {
            prop_assert_eq!(crlf_size(&headers, &counted(&body, cuts)), whole(&headers, &body));
        }
    }
}
