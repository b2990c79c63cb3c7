//! The built-in TURN relay: the protocol core ([`core::TurnServer`],
//! sans-I/O) and the tokio loops that own its sockets ([`server`]).

pub mod core;
pub mod policy;
pub mod stun;
