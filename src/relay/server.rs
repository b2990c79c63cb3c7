//! The tokio side of the TURN relay: a UDP socket and a TCP listener on the
//! TURN port, one UDP socket per allocation, and a timer. Every packet goes
//! through the sans-I/O [`TurnServer`] behind one mutex, held only while it
//! decides (never across an `.await`).

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::mpsc,
    task::JoinHandle,
};

use super::core::{FiveTuple, Metrics, Now, Out, RelayPorts, TurnConfig, TurnServer};

/// Where and how to listen.
/// Relay sockets by relayed address, with the task reading each.
type RelayMap = HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)>;

pub struct Listen {
    /// The TURN port's address (UDP and TCP); port 0 picks one.
    pub addr: SocketAddr,
    /// The address relay sockets bind to.
    pub relay_ip: IpAddr,
    /// Relay ports come from this inclusive range.
    pub ports: (u16, u16),
}

struct Shared {
    core: Mutex<TurnServer>,
    udp: Arc<UdpSocket>,
    relays: Mutex<RelayMap>,
    tcp: Mutex<HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>>,
    /// Open TURN-over-TCP connections per client address.
    tcp_per_ip: Mutex<HashMap<IpAddr, usize>>,
    relay_ip: IpAddr,
    ports: (u16, u16),
    cursor: Mutex<u16>,
}

/// A running relay; `shutdown` stops it.
pub struct TurnHandle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
}

fn now() -> Now {
    Now {
        mono: tokio::time::Instant::now(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Relay sockets opened and closed during one call into the core.
struct Ports<'a> {
    shared: &'a Shared,
    opened: Vec<(SocketAddr, std::net::UdpSocket)>,
    closed: Vec<SocketAddr>,
}

impl RelayPorts for Ports<'_> {
    fn open(
        &mut self,
        ipv6: bool,
        even_pair: bool,
    ) -> io::Result<(SocketAddr, Option<SocketAddr>)> {
        if ipv6 != self.shared.relay_ip.is_ipv6() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "address family"));
        }
        let (lo, hi) = self.shared.ports;
        let span = (hi - lo) as u32 + 1;
        let mut cursor = self.shared.cursor.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..span.min(512) {
            let mut port = lo + (*cursor as u32 % span) as u16;
            *cursor = cursor.wrapping_add(if even_pair { 2 } else { 1 });
            if even_pair {
                port &= !1;
                if port < lo || port >= hi {
                    continue;
                }
            }
            let Ok(sock) = std::net::UdpSocket::bind((self.shared.relay_ip, port)) else {
                continue;
            };
            let second = if even_pair {
                match std::net::UdpSocket::bind((self.shared.relay_ip, port + 1)) {
                    Ok(s) => Some(s),
                    Err(_) => continue,
                }
            } else {
                None
            };
            let mut addrs = Vec::new();
            for s in std::iter::once(sock).chain(second) {
                s.set_nonblocking(true)?;
                let addr = s.local_addr()?;
                addrs.push(addr);
                self.opened.push((addr, s));
            }
            return Ok((addrs[0], addrs.get(1).copied()));
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free relay port",
        ))
    }

    fn close(&mut self, relay: SocketAddr) {
        self.closed.push(relay);
    }
}

impl Shared {
    /// Runs `f` on the core with a port opener, then wires up the sockets
    /// it opened and stops the ones it closed.
    fn with_core<T>(self: &Arc<Self>, f: impl FnOnce(&mut TurnServer, &mut Ports<'_>) -> T) -> T {
        let mut ports = Ports {
            shared: self,
            opened: Vec::new(),
            closed: Vec::new(),
        };
        let out = {
            let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut core, &mut ports)
        };
        let (opened, closed) = (
            std::mem::take(&mut ports.opened),
            std::mem::take(&mut ports.closed),
        );
        for (addr, sock) in opened {
            match UdpSocket::from_std(sock) {
                Ok(sock) => {
                    let sock = Arc::new(sock);
                    let task = tokio::spawn(relay_loop(self.clone(), addr, sock.clone()));
                    self.relays
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(addr, (sock, task));
                }
                Err(e) => tracing::warn!(error = %e, "relay socket"),
            }
        }
        for addr in closed {
            if let Some((_, task)) = self
                .relays
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&addr)
            {
                task.abort();
            }
        }
        out
    }

    async fn dispatch(&self, out: Out) {
        match out {
            Out::Client { to, data } if to.tcp => {
                let tx = self
                    .tcp
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&to)
                    .cloned();
                if let Some(tx) = tx {
                    let _ = tx.try_send(data);
                }
            }
            Out::Client { to, data } => {
                let _ = self.udp.send_to(&data, to.client).await;
            }
            Out::Peer { relay, peer, data } => {
                let sock = self
                    .relays
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&relay)
                    .map(|(s, _)| s.clone());
                if let Some(sock) = sock {
                    let _ = sock.send_to(&data, peer).await;
                }
            }
        }
    }
}

async fn relay_loop(shared: Arc<Shared>, addr: SocketAddr, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            tokio::task::yield_now().await;
            continue;
        };
        let out = {
            let mut core = shared.core.lock().unwrap_or_else(|p| p.into_inner());
            core.handle_peer(now(), addr, peer, &buf[..n])
        };
        if let Some(out) = out {
            shared.dispatch(out).await;
        }
    }
}

async fn udp_loop(shared: Arc<Shared>, local: SocketAddr) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match shared.udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                // ICMP errors surface here on some systems.
                tokio::task::yield_now().await;
                continue;
            }
        };
        let five = FiveTuple {
            client,
            server: local,
            tcp: false,
        };
        let out = shared.with_core(|core, ports| core.handle_client(now(), five, &buf[..n], ports));
        if let Some(out) = out {
            shared.dispatch(out).await;
        }
    }
}

/// TURN-over-TCP connections one client address may hold.
pub const MAX_TCP_PER_IP: usize = 64;
/// How long a TCP client without an allocation may send nothing valid.
pub const TCP_IDLE: Duration = Duration::from_secs(30);
/// The same for a client holding an allocation (its refreshes keep it alive).
pub const TCP_IDLE_ALLOCATED: Duration = Duration::from_secs(600);

async fn tcp_accept(shared: Arc<Shared>, listener: TcpListener) {
    let mut backoff = crate::net::AcceptBackoff::default();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(ok) => {
                backoff.succeeded();
                ok
            }
            Err(e) => {
                if let Some(pause) = backoff.failed(&e) {
                    tracing::warn!(error = %e, ?pause, "TURN accept failed; backing off");
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        {
            let mut per_ip = shared.tcp_per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = per_ip.entry(client.ip()).or_default();
            if *n >= MAX_TCP_PER_IP {
                tracing::debug!(%client, "TURN TCP connection refused: too many from this address");
                continue; // dropped: closed at once
            }
            *n += 1;
        }
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(client);
        tokio::spawn(tcp_conn(
            shared.clone(),
            stream,
            FiveTuple {
                client,
                server: local,
                tcp: true,
            },
        ));
    }
}

/// Reads one TURN frame over TCP: a STUN message or a (padded) ChannelData.
async fn read_frame(
    r: &mut (impl AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    let mut head = [0u8; 4];
    if let Err(e) = r.read_exact(&mut head).await {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let (total, wire) = match head[0] {
        0x00..=0x3F => (20 + len, 20 + len),
        0x40..=0x7F => (4 + len, 4 + len + (4 - len % 4) % 4),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a TURN frame",
            ));
        }
    };
    buf.clear();
    buf.extend_from_slice(&head);
    buf.resize(wire, 0);
    r.read_exact(&mut buf[4..]).await?;
    Ok(Some(total))
}

async fn tcp_conn(shared: Arc<Shared>, stream: TcpStream, five: FiveTuple) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    shared
        .tcp
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(five, tx);
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::with_capacity(2048);
    // A client that sends nothing valid for a while is dropped: soon when it
    // holds no allocation, after the longest allocation lifetime when it does.
    loop {
        let allocated = shared
            .core
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .has_allocation(&five);
        let idle = if allocated {
            TCP_IDLE_ALLOCATED
        } else {
            TCP_IDLE
        };
        let Ok(Ok(Some(n))) = tokio::time::timeout(idle, read_frame(&mut rd, &mut buf)).await
        else {
            break;
        };
        let out = shared.with_core(|core, ports| core.handle_client(now(), five, &buf[..n], ports));
        if let Some(out) = out {
            shared.dispatch(out).await;
        }
    }
    shared
        .tcp
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&five);
    shared.with_core(|core, ports| core.client_closed(five, ports));
    writer.abort();
    let mut per_ip = shared.tcp_per_ip.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = per_ip.get_mut(&five.client.ip()) {
        *n -= 1;
        if *n == 0 {
            per_ip.remove(&five.client.ip());
        }
    }
}

async fn timer(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        shared.with_core(|core, ports| core.tick(tokio::time::Instant::now(), ports));
    }
}

/// Binds UDP and TCP on the same port (trying again when port 0 picked a
/// port that TCP cannot have).
async fn bind_both(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no port for UDP and TCP")))
}

pub async fn start(listen: Listen, config: TurnConfig) -> io::Result<TurnHandle> {
    let (udp, tcp) = bind_both(listen.addr).await?;
    let udp_addr = udp.local_addr()?;
    let tcp_addr = tcp.local_addr()?;
    let start: u16 = rand::random();
    let shared = Arc::new(Shared {
        core: Mutex::new(TurnServer::new(config)),
        udp: Arc::new(udp),
        relays: Mutex::new(HashMap::new()),
        tcp: Mutex::new(HashMap::new()),
        tcp_per_ip: Mutex::new(HashMap::new()),
        relay_ip: listen.relay_ip,
        ports: listen.ports,
        cursor: Mutex::new(start),
    });
    let tasks = vec![
        tokio::spawn(udp_loop(shared.clone(), udp_addr)),
        tokio::spawn(tcp_accept(shared.clone(), tcp)),
        tokio::spawn(timer(shared.clone())),
    ];
    Ok(TurnHandle {
        shared,
        tasks,
        udp_addr,
        tcp_addr,
    })
}

impl TurnHandle {
    pub fn metrics(&self) -> Metrics {
        self.shared
            .core
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .metrics()
    }

    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        for (_, (_, task)) in self
            .shared
            .relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            task.abort();
        }
    }
}
