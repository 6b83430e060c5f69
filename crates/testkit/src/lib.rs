//! Test support shared by the integration tests of `tagpilot-git` and `tagpilot` (the CLI's
//! end-to-end tests): free loopback ports, waiting for a server to listen, a git daemon over a
//! directory of bare repositories, and a test CA with a server certificate. Panics on failure:
//! these run in tests only.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Waits up to `timeout` for `port` to accept connections; panics when `child` exits first.
pub fn wait_for_port(port: u16, child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server on port {port} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on port {port} did not start");
}

/// Serves the bare repositories under `srv` with git-daemon on a free port (pushes allowed),
/// waiting up to `timeout` for it. git-daemon itself runs, not the `git daemon` wrapper, so that
/// killing the child stops the server.
pub fn git_daemon(srv: &Path, timeout: Duration) -> (Child, u16) {
    let port = free_port();
    let exec = Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap_or_else(|e| panic!("git --exec-path: {e}"));
    let exec = String::from_utf8_lossy(&exec.stdout).trim().to_owned();
    let mut child = Command::new(Path::new(&exec).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", srv.display()))
        .arg(srv)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("git daemon: {e}"));
    wait_for_port(port, &mut child, timeout);
    (child, port)
}

/// Runs openssl in `d`; panics when it fails.
pub fn openssl(d: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(d)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "openssl {args:?} failed");
}

/// A key (`key`) and a certificate (`cert`) for `subject` with extensions `ext`, signed by the
/// test CA in `d`.
pub fn signed_cert(d: &Path, key: &str, cert: &str, subject: &str, ext: &str) {
    openssl(
        d,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out",
            "req.csr",
        ],
    );
    std::fs::write(d.join("ext.cnf"), ext).unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-CAcreateserial",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-out",
            cert,
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A test CA (`ca.pem`, `ca.key`) and a server certificate for 127.0.0.1 and localhost, plus
/// `dns` when given, signed by it (`cert.pem`, `key.pem`). rustls, rightly, refuses a
/// self-signed CA certificate used as a server certificate, so the CA and the leaf are separate.
pub fn tls_files(d: &Path, dns: Option<&str>) {
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tagpilot test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    signed_cert(
        d,
        "key.pem",
        "cert.pem",
        "/CN=127.0.0.1",
        &format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost{}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
            dns.map(|n| format!(",DNS:{n}")).unwrap_or_default()
        ),
    );
}
