//! systemd's readiness and watchdog protocol (`Type=notify`, `WatchdogSec=`): datagrams such as
//! `READY=1` to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Without `$NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same
//! under systemd, in a container or by hand.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification; false when there is no socket or it cannot be reached.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = match path.strip_prefix('@') {
        Some(name) => abstract_send(&socket, name, state),
        None => socket.send_to(state.as_bytes(), &path).is_ok(),
    };
    if !sent {
        tracing::debug!(socket = %path, state, "sd_notify failed");
    }
    sent
}

#[cfg(target_os = "linux")]
fn abstract_send(socket: &UnixDatagram, name: &str, state: &str) -> bool {
    use std::os::linux::net::SocketAddrExt as _;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn abstract_send(_: &UnixDatagram, _: &str, _: &str) -> bool {
    false
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (when it is meant for this process,
/// per `$WATCHDOG_PID`), as systemd advises.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
