//! The systemd side: `tagpilot run` speaks sd_notify (READY, WATCHDOG, STOPPING) to the socket
//! systemd names, and systemd/tagpilot.service passes `systemd-analyze verify` with an exposure
//! level of at most 2.0.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn daemon_sends_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args([
            "run",
            "--api-address",
            "",
            "--webhook-address",
            "",
            "--config",
        ])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(seen.iter().any(|m| m.starts_with("READY=1"))
            && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3)
    {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    run(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < stop_deadline && !seen.iter().any(|m| m == "STOPPING=1") {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let ready = seen.iter().find(|m| m.starts_with("READY=1"));
    assert!(
        ready.is_some_and(|m| m.contains("STATUS=0 repositories")),
        "{seen:?}"
    );
    assert!(
        seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "{seen:?}"
    );
    assert!(seen.iter().any(|m| m == "STOPPING=1"), "{seen:?}");
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(repo_root().join("systemd/tagpilot.service")).unwrap();
    // Verify the unit as installed, with the binary where ExecStart expects it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagpilot.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/tagpilot", env!("CARGO_BIN_EXE_tagpilot")),
    )
    .unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze (apt-get install systemd): {e}"));
    let text = format!("{}{}", stdout(&verify), stderr(&verify));
    assert!(verify.status.success() && text.trim().is_empty(), "{text}");
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let out = stdout(&security);
    let exposure = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(exposure.is_some_and(|e| e <= 2.0), "{out}");
    for required in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=tagpilot",
        "ConfigurationDirectory=tagpilot",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(required), "missing {required:?}");
    }
}
