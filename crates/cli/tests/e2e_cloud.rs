//! Cloud registry credentials end to end. AWS: a real AWS API emulator (moto_server, SigV4
//! checked) issues the ECR token; a real docker-registry accepts it as htpasswd user `AWS`; the
//! ECR host name is mapped to 127.0.0.1 in /etc/hosts for the duration of the test, and the
//! registry's TLS certificate names it (the test CA comes from the ImageRepository's
//! certSecretRef).
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

mod common;

use common::*;

#[cfg(feature = "aws")]
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn config(dir: &std::path::Path, image: &str, ca: &str) {
    let ca_indented = ca.replace('\n', "\n    ");
    std::fs::write(
        dir.join("ecr.yaml"),
        format!(
            r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: apps}}
spec:
  image: {image}
  interval: 1m
  provider: aws
  secretRef: {{name: ignored}}
  certSecretRef: {{name: ecr-ca}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app, namespace: apps}}
spec:
  imageRepositoryRef: {{name: app}}
  policy: {{semver: {{range: 1.x}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ecr-ca, namespace: apps}}
stringData:
  ca.crt: |
    {ca_indented}
"#
        ),
    )
    .unwrap();
}

fn once(
    config: &std::path::Path,
    state: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"));
    cmd.args(["run", "--once", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        // Only what the test gives: no profile files, no instance metadata.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
#[cfg(feature = "aws")]
#[ignore = "needs moto_server, docker-registry and root (/etc/hosts); run by tests/run.sh"]
fn ecr_token_from_moto_unlocks_a_real_registry() {
    let (moto, keys) = moto();
    let reg = registry(Auth::Ecr {
        password: keys.password.clone(),
        dns: ECR_HOST.into(),
    });
    let ca = reg.dir.path().join("ca.pem");
    push(
        &format!("https://127.0.0.1:{}", reg.port),
        "team/app",
        &["1.0.0", "1.2.0", "2.0.0"],
        Some(&format!(
            "-u AWS:{} --cacert {}",
            keys.password,
            ca.display()
        )),
    );
    let _hosts = HostsEntry::add(ECR_HOST);
    let image = format!("{ECR_HOST}:{}/team/app", reg.port);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    config(dir.path(), &image, &std::fs::read_to_string(&ca).unwrap());
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let env = |secret: &str| -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", keys.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
            ("AWS_ENDPOINT_URL_ECR", endpoint.clone()),
        ]
    };
    let run = |secret: &str| {
        let e = env(secret);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        once(dir.path(), state.path(), &pairs)
    };

    // The right key: moto signs off the token, the registry accepts it, the policy resolves.
    let o = run(&keys.secret);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("imagerepository/apps/app  True   successful scan: found 3 tags"),
        "{out}"
    );
    assert!(out.contains("resolved to"), "{out}");
    assert!(out.contains(":2.0.0") || out.contains("1.2.0"), "{out}");
    for secret in [keys.secret.as_str(), keys.password.as_str()] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a secret leaked: {out}{err}"
        );
    }

    // The daemon: the refresher keeps the token, the metrics show its expiry (moto's 2015
    // expiry is treated as 15 minutes, not as "refresh now" forever) and no secret; the
    // ignored secretRef is a warning in the status.
    let api = format!("127.0.0.1:{}", free_port());
    // A fresh state directory: with the store of the runs above the daemon would resume from
    // their scan and ask for no token until the interval is up.
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args([
            "run",
            "--webhook-address",
            "",
            "--api-address",
            &api,
            "--config",
        ])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(state.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", state.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "debug")
        .envs(env(&keys.secret))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let get = |path: &str| {
        std::process::Command::new("curl")
            .args(["-sf", &format!("http://{api}{path}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let (mut metrics, mut objects) = (String::new(), String::new());
    for _ in 0..100 {
        metrics = get("/metrics");
        // The token is held before the scan that asked for it records its outcome.
        objects = get("/api/v1/objects");
        if metrics.contains("tagpilot_credential_expiry_seconds{")
            && objects.contains("\"ImageRepository\"")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let labels = format!(
        r#"provider="aws",identity="default",registry="{ECR_HOST}:{}""#,
        reg.port
    );
    let expiry = metrics
        .lines()
        .find(|l| l.starts_with(&format!("tagpilot_credential_expiry_seconds{{{labels}}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        expiry.is_some_and(|s| (800.0..=900.0).contains(&s)),
        "{metrics}\n{logs}"
    );
    assert!(
        metrics.contains(&format!(
            "tagpilot_credential_refresh_failures_total{{{labels}}} 0"
        )),
        "{metrics}"
    );
    assert!(
        objects.contains("spec.secretRef is ignored for provider aws"),
        "{objects}"
    );
    for text in [&metrics, &objects, &logs] {
        for secret in [keys.secret.as_str(), keys.password.as_str()] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }

    // A wrong secret key: moto refuses the signature (403), the scan fails naming AWS, and the
    // wrong key appears nowhere.
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY";
    let o = run(wrong);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("imagerepository/apps/app"))
        .unwrap_or_default();
    assert!(
        row.contains("False") && row.contains("aws: GetAuthorizationToken for"),
        "{out}"
    );
    assert!(
        row.contains("403") || row.to_lowercase().contains("signature"),
        "{row}"
    );
    assert!(!out.contains(wrong) && !err.contains(wrong), "{out}{err}");
    let moto_log = std::fs::read_to_string(moto.dir.path().join("moto.log")).unwrap_or_default();
    assert!(
        moto_log.contains("403"),
        "moto saw no refused request: {moto_log}"
    );
}

/// A build without the `gcp` feature (CI builds one with `aws` only) says so for a gcp
/// repository instead of failing obscurely.
#[test]
#[cfg(not(feature = "gcp"))]
fn a_provider_left_out_of_the_build_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    config(dir.path(), "europe-docker.pkg.dev/project/repo/app", "");
    let text = std::fs::read_to_string(dir.path().join("ecr.yaml")).unwrap_or_default();
    std::fs::write(
        dir.path().join("ecr.yaml"),
        text.replace("provider: aws", "provider: gcp"),
    )
    .unwrap();
    let o = once(dir.path(), state.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("this tagpilot was built without provider gcp (cargo feature 'gcp')"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_host_that_is_not_ecr_is_named_with_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    config(dir.path(), "ghcr.io/org/app", "");
    let o = once(dir.path(), state.path(), &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "scan failed: failed to configure authentication options: invalid AWS registry: 'ghcr.io'. must match"
        ),
        "{out}"
    );
    // Stalled: retrying cannot help until the manifest changes.
    let store = tagpilot_store::Store::open(&state.path().join("tagpilot.redb")).unwrap();
    let status = store
        .status("ImageRepository/apps/app")
        .unwrap()
        .unwrap_or_default();
    let stalled = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Stalled").cloned())
        .unwrap_or_default();
    assert_eq!(stalled["status"], "True", "{status}");
    assert_eq!(stalled["reason"], "AuthenticationFailed", "{status}");
}

#[cfg(feature = "gcp")]
const GCP_HOST: &str = "europe-docker.pkg.dev";

#[test]
#[cfg(feature = "gcp")]
#[ignore = "needs docker-registry and root (/etc/hosts); run by tests/run.sh"]
fn gcp_service_account_token_unlocks_a_token_auth_registry() {
    // The service account: a fresh RSA key; its JSON names the fixture as token_uri.
    let sa = tempfile::tempdir().unwrap();
    let key = sa.path().join("sa-key.pem");
    let public = sa.path().join("sa-pub.pem");
    run(std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key));
    run(std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    let accepted = sa.path().join("accepted");
    let email = "tagpilot@project.iam.gserviceaccount.com";
    let oauth_port = free_port();
    let mut oauth = std::process::Command::new("python3")
        .arg(e2e_script("gcp_oauth.py"))
        .arg(oauth_port.to_string())
        .arg(&public)
        .arg(email)
        .arg(&accepted)
        .spawn()
        .unwrap();
    let sa_json = sa.path().join("service-account.json");
    let private_key = std::fs::read_to_string(&key).unwrap();
    std::fs::write(
        &sa_json,
        serde_json::json!({
            "type": "service_account",
            "project_id": "project",
            "private_key_id": "k1",
            "private_key": private_key,
            "client_email": email,
            "client_id": "1",
            "token_uri": format!("http://127.0.0.1:{oauth_port}/token"),
        })
        .to_string(),
    )
    .unwrap();

    let (tokens, reg) = token_registry_accepting(Some(&accepted));
    push_with_token(
        tokens.port,
        reg.port,
        "project/repo/app",
        &["1.0.0", "1.4.0"],
    );
    let _hosts = HostsEntry::add(GCP_HOST);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gcp.yaml"),
        format!(
            r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: apps}}
spec:
  image: {GCP_HOST}:{}/project/repo/app
  interval: 1m
  provider: gcp
  insecure: true
"#,
            reg.port
        ),
    )
    .unwrap();
    let sa_path = sa_json.to_string_lossy().into_owned();
    let o = once(
        dir.path(),
        state.path(),
        &[("GOOGLE_APPLICATION_CREDENTIALS", &sa_path)],
    );
    let stats = std::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{oauth_port}/stats")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let _ = oauth.kill();
    let _ = oauth.wait();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}{err}\n{stats}");
    assert!(out.contains("successful scan: found 2 tags"), "{out}");
    assert!(
        stats.contains(r#""issued": 1"#) && stats.contains(r#""refused": 0"#),
        "{stats}"
    );
    // The access token (in the accepted file) appears in no output.
    let issued = std::fs::read_to_string(&accepted).unwrap_or_default();
    let token = issued.trim().rsplit(':').next().unwrap_or("none");
    assert!(token.starts_with("ya29."), "{issued}");
    assert!(!out.contains(token) && !err.contains(token), "{out}{err}");

    // No credentials at all: a clear gcp error, not an anonymous scan.
    let o = once(
        dir.path(),
        state.path(),
        &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("gcp: no credentials for"),
        "{}",
        stdout(&o)
    );
}

#[cfg(feature = "azure")]
const ACR_HOST: &str = "tagpilot.azurecr.io";

#[test]
#[cfg(feature = "azure")]
#[ignore = "needs docker-registry and root (/etc/hosts); run by tests/run.sh"]
fn azure_entra_token_exchanged_at_acr_unlocks_the_registry() {
    let (tokens, reg) = token_registry();
    push_with_token(
        tokens.port,
        reg.port,
        "team/app",
        &["3.0.0", "3.1.0", "3.1.1"],
    );
    let tls = tempfile::tempdir().unwrap();
    tls_files(tls.path(), Some(ACR_HOST));
    // The test CA joins the system's roots for tagpilot only, through SSL_CERT_FILE.
    let bundle = tls.path().join("bundle.pem");
    let system = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    let ca = std::fs::read_to_string(tls.path().join("ca.pem")).unwrap();
    std::fs::write(&bundle, format!("{system}\n{ca}")).unwrap();

    let (entra_port, acr_port) = (free_port(), free_port());
    let secret = "s3cret-client-value";
    let mut fixture = std::process::Command::new("python3")
        .arg(e2e_script("azure_fixture.py"))
        .args([entra_port.to_string(), acr_port.to_string()])
        .arg(tls.path().join("cert.pem"))
        .arg(tls.path().join("key.pem"))
        .args([
            ACR_HOST,
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "tagpilot-client",
            secret,
            &format!("http://127.0.0.1:{}", reg.port),
            &format!("http://127.0.0.1:{}/token", tokens.port),
        ])
        .spawn()
        .unwrap();
    for port in [entra_port, acr_port] {
        let up = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "azure fixture did not start");
    }
    let _hosts = HostsEntry::add(ACR_HOST);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("acr.yaml"),
        format!(
            r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: apps}}
spec:
  image: {ACR_HOST}:{acr_port}/team/app
  interval: 1m
  provider: azure
"#
        ),
    )
    .unwrap();
    let authority = format!("https://127.0.0.1:{entra_port}");
    let bundle_path = bundle.to_string_lossy().into_owned();
    let run = |client_secret: &str, authority: &str| {
        once(
            dir.path(),
            state.path(),
            &[
                ("AZURE_AUTHORITY_HOST", authority),
                ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                ("AZURE_CLIENT_ID", "tagpilot-client"),
                ("AZURE_CLIENT_SECRET", client_secret),
                ("SSL_CERT_FILE", &bundle_path),
            ],
        )
    };
    let stats = || {
        std::process::Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(tls.path().join("ca.pem"))
            .arg(format!("https://127.0.0.1:{entra_port}/stats"))
            .output()
            .map(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default())
            .unwrap_or_default()
    };

    let o = run(secret, &authority);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}{err}\n{}", stats());
    assert!(out.contains("successful scan: found 3 tags"), "{out}");
    let s = stats();
    assert_eq!(s["entra"], 1, "{s}");
    assert_eq!(s["exchange"], 1, "{s}");
    assert!(s["token"].as_u64() >= Some(1), "{s}");
    assert_eq!(s["token_refused"], 0, "{s}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");

    // A wrong client secret: Entra refuses, the scan fails naming Azure, the secret stays hidden.
    let wrong = "not-the-client-secret";
    let o = run(wrong, &authority);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("azure: Entra ID token"), "{out}");
    assert!(!out.contains(wrong) && !stderr(&o).contains(wrong), "{out}");
    assert_eq!(stats()["entra_refused"], 1);

    // An authority host over plain HTTP is refused before anything is sent.
    let o = run(secret, &format!("http://127.0.0.1:{entra_port}"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("HTTPS"), "{}", stdout(&o));
    let _ = fixture.kill();
    let _ = fixture.wait();
}
