//! A WebSocket's connection after the HTTP upgrade. hyper hands it over as
//! its `Upgraded`, whose reads and writes go through a boxed stream and a
//! rewind buffer; taken back as the TCP socket it is (with whatever hyper
//! read past the request, read first), every read and write is the
//! socket's own.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

pub enum Upgraded {
    /// The server's own TCP connection.
    Tcp { early: Bytes, tcp: TcpStream },
    /// Anything else hyper was serving (kept as hyper gave it).
    Other(TokioIo<hyper::upgrade::Upgraded>),
    /// Taken off one runtime's reactor, not yet on another's: reads and
    /// writes fail.
    Moving,
}

/// A TCP connection between two runtimes (see [`Upgraded::park`]).
pub struct Parked {
    early: Bytes,
    tcp: std::net::TcpStream,
}

impl Upgraded {
    /// Takes a TCP connection off the current runtime's reactor, to be put
    /// on another's with [`Upgraded::unpark`]; None for anything else
    /// (left as it was).
    pub fn park(&mut self) -> Option<io::Result<Parked>> {
        match std::mem::replace(self, Upgraded::Moving) {
            Upgraded::Tcp { early, tcp } => Some(tcp.into_std().map(|tcp| Parked { early, tcp })),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Puts a parked connection on the current runtime's reactor.
    pub fn unpark(&mut self, parked: Parked) -> io::Result<()> {
        let tcp = TcpStream::from_std(parked.tcp)?;
        *self = Upgraded::Tcp {
            early: parked.early,
            tcp,
        };
        Ok(())
    }
}

fn moving() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection between runtimes")
}

impl From<hyper::upgrade::Upgraded> for Upgraded {
    fn from(upgraded: hyper::upgrade::Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Upgraded::Tcp {
                // An empty slice of hyper's read buffer would keep all of
                // it for as long as the connection lives.
                early: if parts.read_buf.is_empty() {
                    Bytes::new()
                } else {
                    Bytes::copy_from_slice(&parts.read_buf)
                },
                tcp: parts.io.into_inner(),
            },
            Err(other) => Upgraded::Other(TokioIo::new(other)),
        }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upgraded::Tcp { early, tcp } => {
                if early.is_empty() {
                    return Pin::new(tcp).poll_read(cx, buf);
                }
                let n = early.len().min(buf.remaining());
                buf.put_slice(&early[..n]);
                early.advance(n);
                if early.is_empty() {
                    *early = Bytes::new();
                }
                Poll::Ready(Ok(()))
            }
            Upgraded::Other(io) => Pin::new(io).poll_read(cx, buf),
            Upgraded::Moving => Poll::Ready(Err(moving())),
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upgraded::Tcp { tcp, .. } => Pin::new(tcp).poll_write(cx, data),
            Upgraded::Other(io) => Pin::new(io).poll_write(cx, data),
            Upgraded::Moving => Poll::Ready(Err(moving())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upgraded::Tcp { tcp, .. } => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Upgraded::Other(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Upgraded::Moving => Poll::Ready(Err(moving())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upgraded::Tcp { tcp, .. } => tcp.is_write_vectored(),
            Upgraded::Other(io) => io.is_write_vectored(),
            Upgraded::Moving => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upgraded::Tcp { tcp, .. } => Pin::new(tcp).poll_flush(cx),
            Upgraded::Other(io) => Pin::new(io).poll_flush(cx),
            Upgraded::Moving => Poll::Ready(Err(moving())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upgraded::Tcp { tcp, .. } => Pin::new(tcp).poll_shutdown(cx),
            Upgraded::Other(io) => Pin::new(io).poll_shutdown(cx),
            Upgraded::Moving => Poll::Ready(Err(moving())),
        }
    }
}
