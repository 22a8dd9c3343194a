//! Micro-benchmarks of the hot paths of the protocol core: command parsing, the dot-stuffing
//! encoder and decoder, and listing a 100,000-message snapshot.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use postie_proto::{
    BodyEncoder, Capabilities, Command, Credentials, Event, LineReader, MessageEntry,
    MultilineDecoder, ReadLine, ServerOptions, ServerSession,
};
use postie_types::Uidl;

fn message(size: usize) -> Vec<u8> {
    let mut out = b"From: a@example.org\nSubject: bench\n\n".to_vec();
    let mut n = 0;
    while out.len() < size {
        if n % 50 == 7 {
            out.push(b'.');
        }
        out.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\n",
        );
        n += 1;
    }
    out
}

fn parse(c: &mut Criterion) {
    let lines: [&[u8]; 6] = [
        b"STAT",
        b"LIST 12345",
        b"RETR 7",
        b"TOP 9 10",
        b"UIDL",
        b"USER someone@example.org",
    ];
    c.bench_function("parse 6 commands", |b| {
        b.iter(|| {
            for line in lines {
                black_box(Command::parse(black_box(line)).ok());
            }
        })
    });
}

fn stuffing(c: &mut Criterion) {
    let body = message(1 << 20);
    let mut group = c.benchmark_group("dot-stuffing");
    group.throughput(Throughput::Bytes(body.len() as u64));
    // As the server streams a message: 96 KiB read at a time, the output written out (here
    // dropped) after each chunk.
    group.bench_function("encode 1 MiB (LF input)", |b| {
        let mut out = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            let mut encoder = BodyEncoder::whole();
            let mut total = 0;
            for chunk in body.chunks(96 * 1024) {
                out.clear();
                encoder.encode(chunk, &mut out);
                total += out.len();
            }
            encoder.finish(&mut out);
            black_box(total)
        })
    });
    let mut wire = Vec::new();
    let mut encoder = BodyEncoder::whole();
    encoder.encode(&body, &mut wire);
    encoder.finish(&mut wire);
    group.bench_function("decode 1 MiB", |b| {
        b.iter(|| {
            let mut reader = LineReader::new();
            reader.feed(&wire);
            let mut decoder = MultilineDecoder::new();
            let mut total = 0;
            while let Some(ReadLine::Line(line)) = reader.next_line(usize::MAX) {
                match decoder.decode_line(&line) {
                    postie_proto::MultilineItem::Line(bytes) => total += bytes.len(),
                    postie_proto::MultilineItem::End => break,
                }
            }
            black_box(total)
        })
    });
    group.finish();
}

fn listing(c: &mut Criterion) {
    let entries: Vec<MessageEntry> = (0..100_000u32)
        .map(|i| MessageEntry {
            size: 1000 + u64::from(i % 5000),
            uidl: Uidl::new(format!("{i:08x}6553f100")).unwrap(),
        })
        .collect();
    let options = ServerOptions {
        greeting: "ready".into(),
        apop_timestamp: None,
        capabilities: Capabilities {
            sasl: vec![],
            plaintext_sasl: vec![],
            implementation: "bench".into(),
            login_delay_secs: None,
            expire: None,
        },
        stls_available: false,
        secure: true,
        plaintext_allowed_insecure: true,
        max_auth_failures: 3,
        max_bad_commands: 20,
    };
    c.bench_function("STAT+LIST+UIDL of 100,000 messages", |b| {
        b.iter_batched(
            || {
                let mut session = ServerSession::new(options.clone());
                session.feed(b"USER a\r\nPASS b\r\n");
                assert!(matches!(
                    session.next(),
                    Event::Authenticate(Credentials::User { .. })
                ));
                session.login_accepted(entries.clone()).unwrap();
                session.output().clear();
                session
            },
            |mut session| {
                session.feed(b"STAT\r\nLIST\r\nUIDL\r\n");
                assert_eq!(session.next(), Event::NeedInput);
                black_box(session.output().len())
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, parse, stuffing, listing);
criterion_main!(benches);
