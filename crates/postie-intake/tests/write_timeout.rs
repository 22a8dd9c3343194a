//! A client that pipelines commands and never reads the replies is cut off once the replies
//! stop moving for the command timeout, instead of holding its connection for ever.

use std::time::Duration;

use postie_auth::{AuthError, UserDb, UserRecord};
use postie_intake::{IntakeConfig, IntakeServer, Listen};
use postie_store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

struct NoUsers;

impl UserDb for NoUsers {
    fn lookup(&self, _user: &str) -> Result<Option<UserRecord>, AuthError> {
        Ok(None)
    }
}

/// LHLO is answered with several lines, so a few thousand of them fill any socket buffer.
const GREETINGS: usize = 100_000;

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off() {
    let mut config = IntakeConfig::new("mx.example.org");
    config.lmtp_listen = vec![Listen::Tcp("127.0.0.1:0".parse().unwrap())];
    config.command_timeout = Duration::from_secs(1);
    let running = IntakeServer::new(config, MemoryStore::new(), NoUsers)
        .bind()
        .await
        .unwrap();
    let Listen::Tcp(addr) = running.local_addrs()[0].0.clone() else {
        panic!("a TCP listener was asked for");
    };
    tokio::spawn(running.serve(std::future::pending(), Duration::from_secs(1)));

    let socket = TcpSocket::new_v4().unwrap();
    // A small receive buffer, so the server's replies back up into its own send buffer.
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let flood = tokio::spawn(async move {
        let commands = "LHLO client.example.org\r\n".repeat(GREETINGS);
        // The server stops reading while it cannot write; the write may never finish.
        let _ = writer.write_all(commands.as_bytes()).await;
        writer
    });

    // Not reading for well over the timeout: the server must give up on its writes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut replies = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut replies))
        .await
        .expect("the server still holds the connection a minute later");
    // A reset is as good a hang-up as a close.
    let _ = read;
    let answered = replies
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"250 "))
        .count();
    assert!(
        answered < GREETINGS,
        "every one of the {GREETINGS} greetings was answered: the server waited for the reader"
    );
    flood.abort();
}
