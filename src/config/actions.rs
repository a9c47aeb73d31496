//! What an SPA request may do besides opening ports: run a named router
//! command (`config command`) or open a port forward to a LAN host
//! (`config forward`). Plain data, validated by [`super::typed`].

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use crate::port::L4Proto;

/// Most `config command` sections.
pub const MAX_COMMANDS: usize = 32;
/// Most `config forward` sections.
pub const MAX_FORWARDS: usize = 32;
/// Most arguments of a command's `list exec` (the program included).
pub const MAX_EXEC_ARGS: usize = 32;
/// Longest single `exec` argument, in bytes.
pub const MAX_EXEC_ARG_LEN: usize = 1024;
/// Longest `fwknop_match` text (fwknop's message field holds 192 bytes after base64).
pub const MAX_FWKNOP_MATCH: usize = 160;
/// Default `option timeout` of a command, in seconds.
pub const DEFAULT_COMMAND_TIMEOUT: u64 = 30;

/// A `config command` section: a program the router runs for a client that
/// names it (native SPA `--command NAME`) or sends its `fwknop_match` text
/// (fwknop `-C`). Never passed to a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The section name (`config command 'wake_nas'`); what clients name.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `list exec`: the program (an absolute path) and its arguments, as-is.
    pub argv: Vec<String>,
    /// `option timeout` seconds (default [`DEFAULT_COMMAND_TIMEOUT`]): the
    /// program is stopped (TERM, then KILL) when it runs longer.
    pub timeout: Duration,
    /// `option user`: run as this user instead of root.
    pub user: Option<String>,
    /// `option fwknop_match`: the exact text of an fwknop command message
    /// (`fwknop -C 'TEXT'`) that runs this command.
    pub fwknop_match: Option<String>,
    /// The line of the section (for errors found when the daemon loads it,
    /// such as an unknown `user`).
    pub line: usize,
}

/// A `config forward` section: new connections from a granted client's
/// address to the router's `proto`/`port` go to a LAN host (DNAT for IPv4;
/// for IPv6 the LAN host's own address is opened, no NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `option proto` (tcp | udp).
    pub proto: L4Proto,
    /// `option port`: the router's external port (IPv4, DNAT'd).
    pub port: u16,
    /// `option to`: the LAN host's IPv4 address (DNAT target).
    pub to4: Option<Ipv4Addr>,
    /// `option to6`: the LAN host's IPv6 address (forwarded without NAT).
    pub to6: Option<Ipv6Addr>,
    /// `option to_port`: the LAN host's port (default `port`).
    pub to_port: u16,
}

impl Forward {
    /// What a grant to `src` opens, for logs and status: `tcp:2222 ->
    /// 192.168.1.10:22` for an IPv4 source (DNAT), `tcp:22 -> [fd00::10]:22`
    /// for an IPv6 one (no NAT), `tcp:2222` when the family has no target.
    pub fn path_for(&self, src: IpAddr) -> String {
        match (src.to_canonical(), self.to4, self.to6) {
            (IpAddr::V6(_), _, Some(a)) => {
                format!("{}:{} -> [{a}]:{}", self.proto, self.to_port, self.to_port)
            }
            (_, Some(a), _) => format!("{}:{} -> {a}:{}", self.proto, self.port, self.to_port),
            _ => format!("{}:{}", self.proto, self.port),
        }
    }
}

/// A forward with its section name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedForward {
    /// The section name (`config forward 'nas_ssh'`); what clients name.
    pub name: String,
    /// What it forwards.
    pub forward: Forward,
}
