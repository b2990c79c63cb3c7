//! The media server's I/O: one UDP socket for every call on this node, one
//! task that feeds it, the clock and signaling commands to the [`Sfu`].

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::{Datagram, Notice, PeerId, Sdp, Sfu, SfuConfig, SfuError, SfuStats};

/// Datagrams read in one go after the first.
const RECEIVE_BATCH: usize = 64;

enum Command {
    Join {
        peer: PeerId,
        call: String,
        user: String,
        offer: Option<String>,
        reply: oneshot::Sender<Result<Sdp, SfuError>>,
    },
    Signal {
        peer: PeerId,
        sdp: Sdp,
        reply: oneshot::Sender<Result<Option<Sdp>, SfuError>>,
    },
    Candidate {
        peer: PeerId,
        candidate: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        peer: PeerId,
    },
    Tracks {
        peer: PeerId,
        reply: oneshot::Sender<Vec<super::Track>>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
}

/// Talks to the media task. Cheap to clone.
#[derive(Clone)]
pub struct SfuHandle {
    tx: mpsc::Sender<Command>,
    /// The address announced to clients.
    pub public: SocketAddr,
    /// The address the media socket is bound to.
    pub local: SocketAddr,
}

/// The media task stopped (the server is shutting down).
fn stopped() -> SfuError {
    SfuError::UnknownPeer
}

impl SfuHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn join(
        &self,
        peer: PeerId,
        call: &str,
        user: &str,
        offer: Option<String>,
    ) -> Result<Sdp, SfuError> {
        self.ask(|reply| Command::Join {
            peer,
            call: call.to_string(),
            user: user.to_string(),
            offer,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    pub async fn signal(&self, peer: PeerId, sdp: Sdp) -> Result<Option<Sdp>, SfuError> {
        self.ask(|reply| Command::Signal { peer, sdp, reply })
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    pub async fn candidate(&self, peer: PeerId, candidate: String) -> Result<(), SfuError> {
        self.ask(|reply| Command::Candidate {
            peer,
            candidate,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    pub async fn leave(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Leave { peer }).await;
    }

    pub async fn tracks(&self, peer: PeerId) -> Vec<super::Track> {
        self.ask(|reply| Command::Tracks { peer, reply })
            .await
            .unwrap_or_default()
    }

    pub async fn stats(&self) -> SfuStats {
        self.ask(|reply| Command::Stats { reply })
            .await
            .unwrap_or_default()
    }
}

/// Binds the media port and starts the media task. Notices for the
/// signaling layer arrive on the returned receiver.
pub async fn start(
    bind: SocketAddr,
    mut config: SfuConfig,
) -> std::io::Result<(SfuHandle, mpsc::UnboundedReceiver<Notice>)> {
    let socket = UdpSocket::bind(bind).await?;
    let local = socket.local_addr()?;
    if config.public.port() == 0 {
        config.public.set_port(local.port());
    }
    let public = config.public;
    let (tx, rx) = mpsc::channel(256);
    let (notice_tx, notice_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(socket, Sfu::new(config), rx, notice_tx));
    Ok((SfuHandle { tx, public, local }, notice_rx))
}

async fn run(
    socket: UdpSocket,
    mut sfu: Sfu,
    mut commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
) {
    let mut buf = vec![0u8; 2048];
    let mut out: Vec<Datagram> = Vec::new();
    loop {
        let next = sfu.poll(Instant::now(), &mut out);
        for d in out.drain(..) {
            if let Err(e) = socket.send_to(&d.contents, d.destination).await {
                tracing::debug!(error = %e, to = %d.destination, "sfu: send failed");
            }
        }
        for n in sfu.take_notices() {
            let _ = notices.send(n);
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => {
                    let now = Instant::now();
                    sfu.receive(now, source, &buf[..n]);
                    // Whatever else already arrived, before one poll of
                    // every session for them all.
                    for _ in 0..RECEIVE_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, source)) => sfu.receive(now, source, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "sfu: receive failed"),
            },
            cmd = commands.recv() => match cmd {
                None => return,
                Some(cmd) => handle(&mut sfu, cmd),
            },
            () = tokio::time::sleep_until(next.into()) => {}
        }
    }
}

fn handle(sfu: &mut Sfu, cmd: Command) {
    match cmd {
        Command::Join {
            peer,
            call,
            user,
            offer,
            reply,
        } => {
            let _ = reply.send(sfu.join(Instant::now(), peer, &call, &user, offer.as_deref()));
        }
        Command::Signal { peer, sdp, reply } => {
            let _ = reply.send(sfu.signal(peer, &sdp));
        }
        Command::Candidate {
            peer,
            candidate,
            reply,
        } => {
            let _ = reply.send(sfu.candidate(peer, &candidate));
        }
        Command::Leave { peer } => {
            sfu.leave(peer);
        }
        Command::Tracks { peer, reply } => {
            let _ = reply.send(sfu.tracks_of(peer));
        }
        Command::Stats { reply } => {
            let _ = reply.send(sfu.stats());
        }
    }
}
