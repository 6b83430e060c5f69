//! Real servers on 127.0.0.1 for end-to-end tests: Debian's docker-registry (plain, htpasswd +
//! TLS, token auth), the token-server and paginating-front fixtures from tests/e2e. Every
//! process is killed when its handle drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub use tagpilot_testkit::{free_port, tls_files};
use tagpilot_testkit::{openssl, signed_cert};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn e2e_script(name: &str) -> PathBuf {
    repo_root().join("tests/e2e").join(name)
}

/// A child process killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Servers get 20 s to start listening.
fn wait_for_port(port: u16, child: &mut Child) {
    tagpilot_testkit::wait_for_port(port, child, Duration::from_secs(20));
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub enum Auth {
    None,
    /// htpasswd user testuser:testpass, TLS with a self-signed certificate.
    HtpasswdTls,
    /// htpasswd user `AWS` with an ECR token's password, TLS with a certificate that also names
    /// `dns` (an ECR host mapped to 127.0.0.1 by the test).
    Ecr {
        password: String,
        dns: String,
    },
    /// Token auth against a tokenserver.py on `token_port`.
    Token {
        token_port: u16,
    },
    /// TLS (self-signed, `ca.pem`) with token auth whose realm is plain
    /// `http://127.0.0.1:<token_port>/token`.
    TokenTls {
        token_port: u16,
    },
    /// TLS that requires a client certificate signed by the test CA (`client.pem`,
    /// `client.key` are made alongside).
    MutualTls,
}

/// Starts Debian's docker-registry with filesystem storage in a temp dir.
pub fn registry(auth: Auth) -> Server {
    registry_with(tempfile::tempdir().unwrap(), auth)
}

/// The registry config's TLS lines for the certificate `tls_files` made in `d`.
fn tls_section(d: &Path) -> String {
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        d.join("cert.pem").display(),
        d.join("key.pem").display()
    )
}

/// Token auth with a plain-HTTP realm on `token_port`, tokens signed by `bundle`'s key.
fn token_section(token_port: u16, bundle: &Path) -> String {
    format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        bundle.display()
    )
}

/// Starts docker-registry in `dir` (which may already hold files its config names).
fn registry_with(dir: tempfile::TempDir, auth: Auth) -> Server {
    let port = free_port();
    let d = dir.path();
    let mut http = format!("http:\n  addr: 127.0.0.1:{port}\n  secret: testsecret\n");
    let mut auth_cfg = String::new();
    match auth {
        Auth::None => {}
        Auth::HtpasswdTls | Auth::Ecr { .. } => {
            let (user, pass, dns) = match &auth {
                Auth::Ecr { password, dns } => ("AWS", password.as_str(), Some(dns.as_str())),
                _ => ("testuser", "testpass", None),
            };
            let out = run(Command::new("htpasswd").args(["-Bbn", user, pass]));
            std::fs::write(d.join("htpasswd"), out.stdout).unwrap();
            tls_files(d, dns);
            http.push_str(&tls_section(d));
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                d.join("htpasswd").display()
            );
        }
        Auth::MutualTls => {
            tls_files(d, None);
            client_cert(d);
            http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                d.join("cert.pem").display(),
                d.join("key.pem").display(),
                d.join("ca.pem").display()
            ));
        }
        Auth::TokenTls { token_port } => {
            tls_files(d, None);
            http.push_str(&tls_section(d));
            auth_cfg = token_section(token_port, &d.join("cert.pem"));
        }
        Auth::Token { token_port } => {
            auth_cfg = token_section(token_port, &d.join("signing-cert.pem"));
        }
    }
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{http}{auth_cfg}",
        d.join("data").display()
    );
    std::fs::write(d.join("config.yml"), config).unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(d.join("registry.log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start docker-registry (apt-get install docker-registry): {e}")
        });
    wait_for_port(port, &mut child);
    Server { child, port, dir }
}

/// A client certificate (`client.pem`, `client.key`) signed by the test CA in `d`.
pub fn client_cert(d: &Path) {
    signed_cert(
        d,
        "client.key",
        "client.pem",
        "/CN=tagpilot",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
}

/// tinyproxy on 127.0.0.1 with basic auth proxyuser:proxypass; its log records every request.
pub fn proxy() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path();
    std::fs::write(
        d.join("tinyproxy.conf"),
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nBasicAuth proxyuser proxypass\nLogFile \"{log}\"\nLogLevel Connect\nMaxClients 20\nDisableViaHeader Yes\n",
            log = d.join("proxy.log").display()
        ),
    )
    .unwrap();
    let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("tinyproxy");
    let mut child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(d.join("tinyproxy.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("tinyproxy (apt-get install tinyproxy): {e}"));
    wait_for_port(port, &mut child);
    Server { child, port, dir }
}

/// A token-auth pair: token server and registry sharing a signing key.
pub fn token_registry() -> (Server, Server) {
    token_registry_accepting(None)
}

/// [`token_registry`] whose token server also accepts the `user:password` lines of `accepted`.
pub fn token_registry_accepting(accepted: Option<&Path>) -> (Server, Server) {
    let tdir = tempfile::tempdir().unwrap();
    let key = tdir.path().join("signing-key.pem");
    let cert = tdir.path().join("signing-cert.pem");
    openssl(
        tdir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-token-issuer",
            "-keyout",
            "signing-key.pem",
            "-out",
            "signing-cert.pem",
        ],
    );
    let token_port = free_port();
    let mut child = Command::new("python3")
        .arg(e2e_script("tokenserver.py"))
        .arg(&key)
        .arg(&cert)
        .arg(token_port.to_string())
        .args(accepted)
        .spawn()
        .unwrap();
    wait_for_port(token_port, &mut child);
    let tokens = Server {
        child,
        port: token_port,
        dir: tdir,
    };
    // The registry reads its root bundle at start: put it in place first.
    let reg = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&cert, dir.path().join("signing-cert.pem")).unwrap();
        registry_with(dir, Auth::Token { token_port })
    };
    (tokens, reg)
}

/// The paginating front fixture in front of `upstream_port`.
pub fn front(upstream_port: u16, mode: &str, page_size: u32) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(e2e_script("paginating_front.py"))
        .arg(format!("http://127.0.0.1:{upstream_port}"))
        .arg(port.to_string())
        .arg(mode)
        .arg(page_size.to_string())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    Server { child, port, dir }
}

/// Pushes `tags` to `repo` (curl only).
pub fn push(base: &str, repo: &str, tags: &[&str], curl_auth: Option<&str>) {
    let mut cmd = Command::new("bash");
    cmd.arg(e2e_script("push-tags.sh"))
        .arg(base)
        .arg(repo)
        .args(tags);
    if let Some(a) = curl_auth {
        cmd.env("CURL_AUTH", a);
    }
    run(&mut cmd);
}

/// [`push`] with extra settings of push-tags.sh (`PLATFORMS`, `SALT`, `UNIQUE`).
pub fn push_with(base: &str, repo: &str, tags: &[&str], env: &[(&str, &str)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(e2e_script("push-tags.sh"))
        .arg(base)
        .arg(repo)
        .args(tags)
        .envs(env.iter().copied());
    run(&mut cmd);
}

/// The front's request statistics.
pub fn front_stats(port: u16) -> serde_json::Value {
    let out = run(Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/__stats")]));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn tagpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tagpilot: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bare Git repository holding `files` on `main`, served by git-daemon on 127.0.0.1.
pub struct GitServer {
    pub server: Server,
    pub url: String,
    pub bare: PathBuf,
}

pub fn git_cmd(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Human",
            "-c",
            "user.email=human@example.com",
        ])
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn git_server(files: &[(&str, &str)]) -> GitServer {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    let bare = srv.join("fleet.git");
    std::fs::create_dir_all(&bare).unwrap();
    git_cmd(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git_cmd(&bare, &["config", "receive.denyNonFastForwards", "true"]);
    let work = dir.path().join("work");
    git_cmd(
        dir.path(),
        &["clone", "-q", &format!("file://{}", bare.display()), "work"],
    );
    git_cmd(&work, &["checkout", "-q", "-b", "main"]);
    for (path, text) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&work)).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git_cmd(&work, &["add", "-A"]);
    git_cmd(&work, &["commit", "-q", "-m", "initial"]);
    git_cmd(&work, &["push", "-q", "origin", "main"]);
    let (child, port) = tagpilot_testkit::git_daemon(&srv, Duration::from_secs(20));
    GitServer {
        server: Server { child, port, dir },
        url: format!("git://127.0.0.1:{port}/fleet.git"),
        bare,
    }
}

/// Starts tests/e2e/hook_recorder.py (the fixture that stands in for a Flux generic-hmac
/// Receiver and a Slack webhook); `args` are its options. Requests land in `<dir>/hooks.jsonl`.
pub fn hook_recorder(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(e2e_script("hook_recorder.py"))
        .arg(port.to_string())
        .arg(dir.path().join("hooks.jsonl"))
        .args(args)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    Server { child, port, dir }
}

/// The requests a hook recorder has seen so far.
pub fn recorded(recorder: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(recorder.dir.path().join("hooks.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts tests/e2e/google_oidc.py: a JWKS endpoint (Google's stand-in) that also mints ID
/// tokens for the tests.
pub fn google_oidc() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(e2e_script("google_oidc.py"))
        .arg(port.to_string())
        .arg(dir.path())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    Server { child, port, dir }
}

/// The Python venv with `moto[server]` and boto3 that tests/run.sh makes
/// (`$TAGPILOT_MOTO_VENV`, default `target/moto-venv`).
pub fn moto_venv() -> PathBuf {
    std::env::var_os("TAGPILOT_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/moto-venv"))
}

/// What tests/e2e/moto_setup.py made: an IAM access key and the ECR token's password.
pub struct MotoKeys {
    pub key_id: String,
    pub secret: String,
    pub password: String,
}

/// moto_server with SigV4 checking on (after the 4 setup calls of moto_setup.py).
pub fn moto() -> (Server, MotoKeys) {
    let venv = moto_venv();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.path().join("moto.log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start moto_server from {} (tests/run.sh makes it): {e}",
                venv.display()
            )
        });
    wait_for_port(port, &mut child);
    let server = Server { child, port, dir };
    let out = run(Command::new(venv.join("bin/python"))
        .arg(e2e_script("moto_setup.py"))
        .arg(format!("http://127.0.0.1:{port}")));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("moto_setup: {e}"));
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let keys = MotoKeys {
        key_id: field("key_id"),
        secret: field("secret"),
        password: field("password"),
    };
    (server, keys)
}

/// An `/etc/hosts` line mapping `name` to 127.0.0.1, removed again on drop (needs root).
pub struct HostsEntry {
    line: String,
}

/// Tests of one binary run in parallel: one /etc/hosts edit at a time.
static HOSTS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl HostsEntry {
    pub fn add(name: &str) -> Self {
        let _guard = HOSTS_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = format!("127.0.0.1 {name} # tagpilot test");
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let sep = if hosts.ends_with('\n') || hosts.is_empty() {
            ""
        } else {
            "\n"
        };
        std::fs::write("/etc/hosts", format!("{hosts}{sep}{line}\n"))
            .unwrap_or_else(|e| panic!("cannot edit /etc/hosts (needs root): {e}"));
        HostsEntry { line }
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        let _guard = HOSTS_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            let kept: String = hosts
                .lines()
                .filter(|l| *l != self.line)
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write("/etc/hosts", kept);
        }
    }
}

/// Pushes `tags` to a token-auth registry with a push-scoped token fetched the way docker does
/// (as testuser).
pub fn push_with_token(tokens_port: u16, reg_port: u16, repo: &str, tags: &[&str]) {
    let token_url = format!(
        "http://127.0.0.1:{tokens_port}/token?service=test-registry&scope=repository:{repo}:pull,push"
    );
    let out = run(Command::new("curl").args(["-sf", "-u", "testuser:testpass", &token_url]));
    let tok: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    push_with_bearer(
        reg_port,
        repo,
        tags,
        tok["token"].as_str().unwrap_or_default(),
    );
}

pub fn push_with_bearer(port: u16, repo: &str, tags: &[&str], token: &str) {
    let mut cmd = Command::new("bash");
    cmd.arg(e2e_script("push-tags.sh"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(repo)
        .args(tags)
        .env("CURL_AUTH", format!("--oauth2-bearer {token}"));
    run(&mut cmd);
}

/// A running daemon, killed if the test fails before stopping it.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `check` every 200 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// GETs `url` through curl: the body, or None unless the answer was a success.
pub fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl").args(["-sf", url]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The HTTP status curl gets for `url` with extra `args` ("000" when it could not connect).
pub fn http_status(args: &[&str], url: &str) -> String {
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// POSTs `body` with `headers` through curl; the HTTP status code (0 when curl failed).
pub fn post(url: &str, headers: &[&str], body: &[u8]) -> u16 {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .arg(url);
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The daemon's objects (`GET /api/v1/objects`), by `Kind/namespace/name`.
pub fn api_objects(api: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    let body = http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                format!(
                    "{}/{}/{}",
                    i["kind"].as_str().unwrap_or(""),
                    i["namespace"].as_str().unwrap_or(""),
                    i["name"].as_str().unwrap_or("")
                ),
                i["status"].clone(),
            )
        })
        .collect()
}

/// The sops binary tests/run.sh installs (TAGPILOT_SOPS), else one on PATH.
pub fn sops() -> String {
    std::env::var("TAGPILOT_SOPS").unwrap_or_else(|_| "sops".to_owned())
}

/// A new age key in `file`; its public recipient.
pub fn age_key(file: &std::path::Path) -> String {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(file);
    run(std::process::Command::new("age-keygen").arg("-o").arg(file));
    std::fs::read_to_string(file)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap()
        .to_owned()
}
