//! Kernel TLS (kTLS): once rustls has completed a handshake on a plain TCP socket, the
//! session's keys go to the kernel, which then encrypts what is written (a `sendfile` of a
//! message included: no copy through user space) and decrypts what is read. Where the kernel
//! does not offer the `tls` upper-layer protocol, or the session is not one it can take, the
//! session stays with rustls in user space, unchanged.
//!
//! After the switch every read is a `recvmsg` that asks for the record type: application data
//! is returned, a close_notify alert is the end of the stream, and anything else the client
//! sends (another alert, a TLS 1.3 key update, which the kernel cannot follow) ends the session
//! with an error rather than a guess.

use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, TlsGetRecordType,
};
use rustls::ConnectionTrafficSecrets;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::Conn;

/// Whether sessions are handed to the kernel at all (the configuration's `kernel_tls`).
static WANTED: AtomicBool = AtomicBool::new(true);
/// Cleared by the first socket that refuses the `tls` upper-layer protocol: the kernel does
/// not offer it, and no later session needs to ask again.
static OFFERED: AtomicBool = AtomicBool::new(true);

/// TLS record types and alert description, as on the wire (RFC 8446 5.1, 6).
const ALERT: u8 = 21;
const CLOSE_NOTIFY: u8 = 0;

/// Turns the switch to kernel TLS on or off for the sessions that start from now on.
pub fn set_wanted(wanted: bool) {
    WANTED.store(wanted, Ordering::Relaxed);
}

/// Why a session could not be handed to the kernel after it was committed to the switch; the
/// connection is unusable.
#[derive(Debug, thiserror::Error)]
#[error("handing the TLS session to the kernel: {0}")]
pub struct KernelTlsError(String);

/// Where a session went after its handshake.
pub(crate) enum Switched {
    Kernel(KernelTls),
    User(Box<TlsStream<Conn>>),
}

/// Hands a TLS session on plain TCP to the kernel when it can; otherwise gives it back as it
/// was. Only an error after the socket was committed to kernel TLS loses the connection.
pub(crate) fn switch(mut tls: TlsStream<Conn>) -> Result<Switched, KernelTlsError> {
    if !WANTED.load(Ordering::Relaxed) || !OFFERED.load(Ordering::Relaxed) {
        return Ok(Switched::User(Box::new(tls)));
    }
    let (conn, session) = tls.get_mut();
    let Conn::Tcp(stream) = conn else {
        return Ok(Switched::User(Box::new(tls)));
    };
    // Records still to send (session tickets) would be lost; suites the kernel does not
    // implement stay in user space.
    let suite = session.negotiated_cipher_suite().map(|s| s.suite());
    let supported = matches!(
        suite,
        Some(
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                | rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    );
    if session.wants_write() || !supported {
        return Ok(Switched::User(Box::new(tls)));
    }
    if let Err(errno) = setsockopt(&*stream, sockopt::TcpUlp::default(), b"tls") {
        // ENOENT: no such upper-layer protocol (no module); the socket is unchanged.
        OFFERED.store(false, Ordering::Relaxed);
        tracing::info!(error = %errno, "kernel TLS is not offered by this kernel; TLS stays in user space");
        return Ok(Switched::User(Box::new(tls)));
    }
    // Committed: from here a failure loses the connection. What rustls decrypted already
    // (a command sent right after the handshake) is read first.
    let mut pending = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        match session.reader().read(&mut piece) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(KernelTlsError(format!("reading what rustls holds: {e}"))),
        }
    }
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => libc::TLS_1_3_VERSION,
        _ => libc::TLS_1_2_VERSION,
    };
    let (conn, session) = tls.into_inner();
    let Conn::Tcp(stream) = conn else {
        return Err(KernelTlsError("the connection is not TCP".into()));
    };
    let secrets = session
        .dangerous_extract_secrets()
        .map_err(|e| KernelTlsError(format!("extracting the session keys: {e}")))?;
    let tx = crypto_info(version, secrets.tx)?;
    let rx = crypto_info(version, secrets.rx)?;
    let keyed = setsockopt(&stream, sockopt::TcpTlsTx, &tx)
        .map_err(|e| format!("TLS_TX: {e}"))
        .and_then(|()| {
            setsockopt(&stream, sockopt::TcpTlsRx, &rx).map_err(|e| format!("TLS_RX: {e}"))
        });
    if let Err(why) = keyed {
        // The kernel has the protocol but not this cipher (its crypto module is missing):
        // this session is lost, the next ones stay in user space.
        OFFERED.store(false, Ordering::Relaxed);
        tracing::warn!(error = %why, "kernel TLS refused a session's keys; TLS stays in user space from now on");
        return Err(KernelTlsError(why));
    }
    Ok(Switched::Kernel(KernelTls {
        stream,
        pending,
        pending_at: 0,
        read_closed: false,
        write_closed: false,
    }))
}

/// The kernel's form of one direction's keys: AES-GCM's 12-octet nonce is its 4-octet salt
/// and 8-octet IV; ChaCha20-Poly1305 takes all 12 as its IV.
fn crypto_info(
    version: u16,
    (sequence, secrets): (u64, ConnectionTrafficSecrets),
) -> Result<sockopt::TlsCryptoInfo, KernelTlsError> {
    let rec_seq = sequence.to_be_bytes();
    let info = |cipher_type| libc::tls_crypto_info {
        version,
        cipher_type,
    };
    let bad = |what: &str| KernelTlsError(format!("a {what} of an unexpected length"));
    Ok(match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            let iv = iv.as_ref();
            sockopt::TlsCryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                info: info(libc::TLS_CIPHER_AES_GCM_128),
                iv: iv[4..].try_into().map_err(|_| bad("nonce"))?,
                key: key.as_ref().try_into().map_err(|_| bad("key"))?,
                salt: iv[..4].try_into().map_err(|_| bad("nonce"))?,
                rec_seq,
            })
        }
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            let iv = iv.as_ref();
            sockopt::TlsCryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                info: info(libc::TLS_CIPHER_AES_GCM_256),
                iv: iv[4..].try_into().map_err(|_| bad("nonce"))?,
                key: key.as_ref().try_into().map_err(|_| bad("key"))?,
                salt: iv[..4].try_into().map_err(|_| bad("nonce"))?,
                rec_seq,
            })
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            sockopt::TlsCryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                info: info(libc::TLS_CIPHER_CHACHA20_POLY1305),
                iv: iv.as_ref().try_into().map_err(|_| bad("nonce"))?,
                key: key.as_ref().try_into().map_err(|_| bad("key"))?,
                salt: [],
                rec_seq,
            })
        }
        _ => {
            return Err(KernelTlsError(
                "a cipher the kernel does not implement".into(),
            ))
        }
    })
}

/// A TLS session the kernel encrypts and decrypts.
pub struct KernelTls {
    stream: TcpStream,
    /// Plaintext rustls had decrypted before the switch, read before anything else.
    pending: Vec<u8>,
    pending_at: usize,
    read_closed: bool,
    write_closed: bool,
}

impl KernelTls {
    /// The socket: what is written to it goes out encrypted (`sendfile` included).
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.stream
    }
}

/// What one `recvmsg` on a kernel TLS socket gave.
enum Received {
    Data(usize),
    /// close_notify: the client ended the session.
    End,
    Refused(&'static str),
}

fn receive(fd: RawFd, out: &mut [u8]) -> io::Result<Received> {
    let mut control = nix::cmsg_space!(u8);
    let mut iov = [IoSliceMut::new(&mut *out)];
    let (bytes, record_type) = {
        let message = recvmsg::<()>(fd, &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT)
            .map_err(io::Error::from)?;
        let record_type = message.cmsgs().ok().and_then(|mut all| {
            all.find_map(|cmsg| match cmsg {
                ControlMessageOwned::TlsGetRecordType(kind) => Some(kind),
                _ => None,
            })
        });
        (message.bytes, record_type)
    };
    Ok(match record_type {
        None | Some(TlsGetRecordType::ApplicationData) => Received::Data(bytes),
        Some(TlsGetRecordType::Alert) => {
            let [_, description, ..] = &*out else {
                return Ok(Received::Refused("a truncated TLS alert"));
            };
            if bytes >= 2 && *description == CLOSE_NOTIFY {
                Received::End
            } else {
                Received::Refused("the client sent a TLS alert")
            }
        }
        Some(TlsGetRecordType::Handshake) => {
            Received::Refused("a TLS handshake message after the handshake (a key update), which kernel TLS cannot follow")
        }
        Some(_) => Received::Refused("an unexpected TLS record type"),
    })
}

impl AsyncRead for KernelTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending_at < this.pending.len() {
            let n = buf.remaining().min(this.pending.len() - this.pending_at);
            buf.put_slice(&this.pending[this.pending_at..this.pending_at + n]);
            this.pending_at += n;
            return Poll::Ready(Ok(()));
        }
        if this.read_closed || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let fd = this.stream.as_raw_fd();
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            let out = buf.initialize_unfilled();
            match this.stream.try_io(Interest::READABLE, || receive(fd, out)) {
                Ok(Received::Data(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Received::End) => {
                    this.read_closed = true;
                    return Poll::Ready(Ok(()));
                }
                Ok(Received::Refused(why)) => {
                    this.read_closed = true;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for KernelTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// Sends close_notify, as rustls would, then ends the TCP stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            ready!(this.stream.poll_write_ready(cx))?;
            let fd = this.stream.as_raw_fd();
            match this
                .stream
                .try_io(Interest::WRITABLE, || send_close_notify(fd))
            {
                Ok(()) => this.write_closed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                // The peer is gone: nothing to notify.
                Err(_) => this.write_closed = true,
            }
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// A warning-level close_notify alert as a TLS record of its own type, which the kernel
/// encrypts (`TLS_SET_RECORD_TYPE`).
#[allow(unsafe_code)]
fn send_close_notify(fd: RawFd) -> io::Result<()> {
    let alert = [1u8, CLOSE_NOTIFY];
    let mut iov = libc::iovec {
        iov_base: alert.as_ptr() as *mut libc::c_void,
        iov_len: alert.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: a zeroed msghdr is a valid empty one; every pointer set below points into
    // `iov`, `alert` or `control`, which outlive the sendmsg call; CMSG_FIRSTHDR of a
    // control buffer of CMSG_SPACE(1) octets is non-null and has room for one octet of data.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&message);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = libc::TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = ALERT;
        if libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
