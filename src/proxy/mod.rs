//! Sockets, streaming and timeouts: the phases of DESIGN §2 that do I/O.

pub mod body;
pub mod forward;
pub mod pipeline;
pub mod server;
