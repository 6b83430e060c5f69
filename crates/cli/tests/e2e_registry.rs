//! `tagpilot scan` and `tagpilot resolve --image` against real registries on 127.0.0.1:
//! Debian's docker-registry three ways (plain HTTP, htpasswd + TLS, token auth), and the
//! paginating front fixture for pagination and fault injection.
//!
//! These need docker-registry, htpasswd, openssl, curl and python3; tests/run.sh installs them
//! and runs these tests with `--ignored`.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

mod common;

use std::time::Instant;

use common::*;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn plain_http_scan_and_resolve() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    let tags = [
        "5.0.0",
        "5.0.1",
        "5.0.3",
        "5.1.0",
        "6.0.0",
        "latest",
        "sha256-0123abcd.sig",
    ];
    push(&base, "stefanprodan/podinfo", &tags, None);
    let image = format!("127.0.0.1:{}/stefanprodan/podinfo", reg.port);
    let o = tagpilot(&["scan", &image, "--insecure"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Descending byte order, as Flux stores them.
    assert_eq!(
        lines(&stdout(&o)),
        vec![
            "sha256-0123abcd.sig",
            "latest",
            "6.0.0",
            "5.1.0",
            "5.0.3",
            "5.0.1",
            "5.0.0"
        ]
    );
    assert!(
        stderr(&o).contains("7 tags, revision sha256:"),
        "{}",
        stderr(&o)
    );

    let o = tagpilot(&["scan", &image, "--insecure", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tagCount"], 7);
    assert_eq!(v["canonicalImageName"], image);

    let o = tagpilot(&[
        "resolve",
        "--image",
        &image,
        "--insecure",
        "--semver",
        "5.0.x",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "5.0.3\n");
    // The default exclusion drops the signature tag under alphabetical order.
    let o = tagpilot(&[
        "resolve",
        "--image",
        &image,
        "--insecure",
        "--alphabetical",
        "desc",
        "--exclude",
        "^5",
    ]);
    assert_eq!(stdout(&o), "6.0.0\n");

    // Names with several path segments.
    push(&base, "team/sub/app", &["1.0.0", "1.2.0"], None);
    let o = tagpilot(&[
        "resolve",
        "--image",
        &format!("127.0.0.1:{}/team/sub/app", reg.port),
        "--insecure",
        "--semver",
        ">=1.0.0",
    ]);
    assert_eq!(stdout(&o), "1.2.0\n");

    // A missing repository and a wrong scheme give clear errors.
    let o = tagpilot(&[
        "scan",
        &format!("127.0.0.1:{}/nope", reg.port),
        "--insecure",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("repository not found (404)") || stderr(&o).contains("404"),
        "{}",
        stderr(&o)
    );
    let o = tagpilot(&["scan", &format!("http://127.0.0.1:{}/app", reg.port)]);
    assert!(
        stderr(&o).contains("should not include URL scheme"),
        "{}",
        stderr(&o)
    );
    let o = tagpilot(&["scan", &image]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "TLS to a plain-HTTP registry must fail"
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn htpasswd_and_tls_with_ca_and_docker_config() {
    let reg = registry(Auth::HtpasswdTls);
    let ca = reg.dir.path().join("ca.pem");
    let base = format!("https://127.0.0.1:{}", reg.port);
    push(
        &base,
        "app",
        &["1.0.0", "1.1.0"],
        Some(&format!("-u testuser:testpass --cacert {}", ca.display())),
    );
    let image = format!("127.0.0.1:{}/app", reg.port);
    let ca_arg = ca.to_string_lossy().into_owned();

    // No credentials: a clear authentication error, nothing on stdout.
    let o = tagpilot(&["scan", &image, "--ca-file", &ca_arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("requires a username and password"),
        "{}",
        stderr(&o)
    );

    // Credentials from a docker config (auths.auth = base64(user:pass)).
    let cfg = reg.dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"dGVzdHVzZXI6dGVzdHBhc3M="}}}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    let cfg_arg = cfg.to_string_lossy().into_owned();
    let o = tagpilot(&[
        "scan",
        &image,
        "--ca-file",
        &ca_arg,
        "--docker-config",
        &cfg_arg,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1.1.0\n1.0.0\n");

    // Without the CA the self-signed certificate is refused.
    let o = tagpilot(&["scan", &image, "--docker-config", &cfg_arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "{}",
        stderr(&o)
    );

    // Wrong password: refused, and the password never appears in the error.
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"username":"testuser","password":"WRONG-s3cr3t"}}}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    let o = tagpilot(&[
        "scan",
        &image,
        "--ca-file",
        &ca_arg,
        "--docker-config",
        &cfg_arg,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("authentication failed (401)"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("WRONG-s3cr3t"));

    // A credential helper (credHelpers) supplies the credentials.
    let bin = reg.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-fake");
    std::fs::write(&helper, "#!/bin/sh\nread host\necho \"{\\\"ServerURL\\\":\\\"$host\\\",\\\"Username\\\":\\\"testuser\\\",\\\"Secret\\\":\\\"testpass\\\"}\"\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        &cfg,
        format!(r#"{{"credHelpers":{{"127.0.0.1:{}":"fake"}}}}"#, reg.port),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args([
            "scan",
            &image,
            "--ca-file",
            &ca_arg,
            "--docker-config",
            &cfg_arg,
        ])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1.1.0\n1.0.0\n");
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn token_auth() {
    let (tokens, reg) = token_registry();
    // Pushing needs a push-scoped token, fetched the way docker does.
    push_with_token(tokens.port, reg.port, "app", &["2.0.0", "2.1.0"]);

    let image = format!("127.0.0.1:{}/app", reg.port);
    // Anonymous: the token server grants no access, the registry answers 401.
    let o = tagpilot(&["scan", &image, "--insecure"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );

    // A docker config with testuser and `password`, then a scan with it.
    let cfg = reg.dir.path().join("config.json");
    let scan_as = |password: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"{{"auths":{{"127.0.0.1:{}":{{"username":"testuser","password":"{password}"}}}}}}"#,
                reg.port
            ),
        )
        .unwrap();
        tagpilot(&[
            "scan",
            &image,
            "--insecure",
            "--docker-config",
            &cfg.to_string_lossy(),
        ])
    };
    let o = scan_as("testpass");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "2.1.0\n2.0.0\n");

    let o = scan_as("bad");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unable to retrieve auth token"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn an_http_token_realm_of_an_https_registry_gets_no_credentials() {
    // The realm is a recorder: whatever reaches it is logged.
    let realm = hook_recorder(&[]);
    let reg = registry(Auth::TokenTls {
        token_port: realm.port,
    });
    let image = format!("127.0.0.1:{}/app", reg.port);
    let cfg = reg.dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"username":"testuser","password":"Cleartext-s3cr3t"}}}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    let o = tagpilot(&[
        "scan",
        &image,
        "--ca-file",
        &reg.dir.path().join("ca.pem").to_string_lossy(),
        "--docker-config",
        &cfg.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the token realm is plain http while the registry is https"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("Cleartext-s3cr3t"));
    assert_eq!(recorded(&realm), Vec::<serde_json::Value>::new());
}

/// Pushes through a token-auth registry with a ready bearer token.
fn seeded_registry(repo: &str, n: usize) -> Server {
    let reg = registry(Auth::None);
    push(
        &format!("http://127.0.0.1:{}", reg.port),
        repo,
        &["seed"],
        None,
    );
    run(std::process::Command::new("python3")
        .arg(e2e_script("seed_tags.py"))
        .arg(reg.dir.path().join("data"))
        .arg(repo)
        .arg("seed")
        .arg("2.0.")
        .arg(n.to_string()));
    reg
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn ten_thousand_tags_and_pagination() {
    let reg = seeded_registry("big", 10_000);
    let direct = tagpilot(&[
        "scan",
        &format!("127.0.0.1:{}/big", reg.port),
        "--insecure",
        "--output",
        "json",
    ]);
    assert!(direct.status.success(), "{}", stderr(&direct));
    let direct: serde_json::Value = serde_json::from_slice(&direct.stdout).unwrap();
    assert_eq!(direct["tagCount"], 10_001);
    assert_eq!(direct["pages"], 1, "distribution 2.8 ignores n: one page");

    for mode in ["plain", "absolute-links"] {
        let f = front(reg.port, mode, 1000);
        let o = tagpilot(&[
            "scan",
            &format!("127.0.0.1:{}/big", f.port),
            "--insecure",
            "--output",
            "json",
        ]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["tagCount"], 10_001, "{mode}");
        assert_eq!(
            v["revision"], direct["revision"],
            "{mode}: same list, same revision"
        );
        assert_eq!(v["pages"], 11, "{mode}");
        let stats = front_stats(f.port);
        assert_eq!(
            stats["requests"], 11,
            "{mode}: one request per page, no retries"
        );
    }
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn politeness_and_faults() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    let tags: Vec<String> = (0..250).map(|i| format!("1.0.{i}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    push(&base, "app", &tag_refs, None);

    // 429 + Retry-After: 1 on the first request of every page; each page is retried once
    // after the pause, never hammered.
    let f = front(reg.port, "rate-limit", 100);
    let start = Instant::now();
    let o = tagpilot(&[
        "scan",
        &format!("127.0.0.1:{}/app", f.port),
        "--insecure",
        "--output",
        "json",
    ]);
    let elapsed = start.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tagCount"], 250);
    let stats = front_stats(f.port);
    assert_eq!(
        stats["requests"], 6,
        "3 pages, each 429 once then 200: {stats}"
    );
    assert_eq!(stats["statuses"]["429"], 3);
    assert!(
        elapsed.as_secs_f64() >= 3.0,
        "Retry-After honoured three times: {elapsed:?}"
    );
    let times: Vec<f64> = stats["times"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    for pair in times.chunks(2) {
        if let [a, b] = pair {
            assert!(b - a >= 0.95, "retry came {}s after the 429", b - a);
        }
    }

    // Two 500s, then success: retried with back-off, three requests in all for page one.
    let f = front(reg.port, "flaky", 100);
    let o = tagpilot(&["scan", &format!("127.0.0.1:{}/app", f.port), "--insecure"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 250);
    let stats = front_stats(f.port);
    assert_eq!(stats["statuses"]["500"], 2);
    assert_eq!(stats["requests"], 5);

    // A page size the registry rejects: retried once with a smaller one.
    let f = front(reg.port, "reject-n", 1000);
    let o = tagpilot(&["scan", &format!("127.0.0.1:{}/app", f.port), "--insecure"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 250);

    // A registry that ignores n returns everything at once.
    let f = front(reg.port, "ignore-n", 10);
    let o = tagpilot(&["scan", &format!("127.0.0.1:{}/app", f.port), "--insecure"]);
    assert_eq!(stdout(&o).lines().count(), 250);

    // Bad answers: clear errors, exit 1, nothing on stdout.
    for (mode, want) in [
        (
            "truncated",
            "tag listing incomplete after 1 page(s) and 100 tags",
        ),
        ("garbage", "not a tag list"),
        ("html", "unexpected content type 'text/html'"),
        ("redirect-away", "redirect to another host refused"),
        ("redirect-loop", "more than 5 redirects within the registry"),
        ("huge", "response body larger than"),
        ("loop", "pagination loops back"),
    ] {
        let f = front(reg.port, mode, 100);
        let o = tagpilot(&["scan", &format!("127.0.0.1:{}/app", f.port), "--insecure"]);
        assert_eq!(o.status.code(), Some(1), "{mode}");
        assert!(o.stdout.is_empty(), "{mode}");
        assert!(stderr(&o).contains(want), "{mode}: {}", stderr(&o));
        assert!(
            front_stats(f.port)["requests"].as_u64().unwrap_or(99) <= 12,
            "{mode}: no retry storm"
        );
    }
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn digests_for_tags() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(e2e_script("push-tags.sh"))
        .arg(&base)
        .arg("uniq")
        .args(["1.0.0", "1.0.1"])
        .env("UNIQUE", "1");
    run(&mut cmd);
    let digest = |tag: &str| {
        let out = run(std::process::Command::new("curl").args([
            "-sfI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("{base}/v2/uniq/manifests/{tag}"),
        ]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("docker-content-digest:")
                    .map(|d| d.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let (d0, d1) = (digest("1.0.0"), digest("1.0.1"));
    assert!(d0.starts_with("sha256:") && d0 != d1);
    let (rt, gates) = (runtime(), default_gates());
    let client = insecure_client(&reg, "uniq", &gates);
    let got = rt.block_on(client.head_digest("1.0.1")).unwrap();
    assert_eq!(got, d1);
    let missing = rt.block_on(client.head_digest("9.9.9"));
    assert!(
        matches!(
            missing,
            Err(tagpilot_registry::RegistryError::NotFound { .. })
        ),
        "{missing:?}"
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn store_keeps_last_good_list_until_a_drop_is_confirmed() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    let tags: Vec<String> = (0..10).map(|i| format!("1.0.{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    push(&base, "app", &refs, None);
    push(&base, "other", &["2.0.0"], None);
    let state = reg.dir.path().join("state/tagpilot.redb");
    let state_arg = state.to_string_lossy().into_owned();
    let app = format!("127.0.0.1:{}/app", reg.port);
    let other = format!("127.0.0.1:{}/other", reg.port);
    let scan = || tagpilot(&["scan", &app, &other, "--insecure", "--store", &state_arg]);

    let o = scan();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{app} 10 tags sha256:")),
        "{}",
        stdout(&o)
    );
    let stored = |repo: &str| {
        let s = tagpilot_store::Store::open(&state).unwrap();
        s.tags(repo).unwrap().map(|t| t.len())
    };
    assert_eq!(stored(&app), Some(10));
    assert_eq!(stored(&other), Some(1));

    // Eight tags vanish (a registry glitch, or a cleanup): the first scan that sees it is held.
    let tag_dir = reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/app/_manifests/tags");
    for i in 2..10 {
        std::fs::remove_dir_all(tag_dir.join(format!("1.0.{i}"))).unwrap();
    }
    let o = scan();
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("tag count dropped from 10 to 2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stored(&app), Some(10), "the last good list is kept");
    // The same answer twice is the truth.
    let o = scan();
    assert!(!stderr(&o).contains("dropped"), "{}", stderr(&o));
    assert_eq!(stored(&app), Some(2));
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn client_certificates() {
    let reg = registry(Auth::MutualTls);
    let d = reg.dir.path();
    let image = format!("127.0.0.1:{}/app", reg.port);
    let curl_auth = format!(
        "--cacert {} --cert {} --key {}",
        d.join("ca.pem").display(),
        d.join("client.pem").display(),
        d.join("client.key").display()
    );
    push(
        &format!("https://127.0.0.1:{}", reg.port),
        "app",
        &["3.0.0"],
        Some(&curl_auth),
    );
    let ca = d.join("ca.pem").to_string_lossy().into_owned();
    let o = tagpilot(&[
        "scan",
        &image,
        "--ca-file",
        &ca,
        "--cert-file",
        &d.join("client.pem").to_string_lossy(),
        "--key-file",
        &d.join("client.key").to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3.0.0\n");
    // Without the client certificate the registry refuses the handshake.
    let o = tagpilot(&["scan", &image, "--ca-file", &ca]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
#[ignore = "needs docker-registry and tinyproxy; run by tests/run.sh"]
fn through_a_proxy() {
    let reg = registry(Auth::None);
    push(
        &format!("http://127.0.0.1:{}", reg.port),
        "app",
        &["4.0.0", "4.1.0"],
        None,
    );
    let p = proxy();
    let image = format!("127.0.0.1:{}/app", reg.port);
    let log = || std::fs::read_to_string(p.dir.path().join("proxy.log")).unwrap_or_default();
    let via = format!("http://proxyuser:proxypass@127.0.0.1:{}", p.port);
    let o = tagpilot(&["scan", &image, "--insecure", "--proxy", &via]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "4.1.0\n4.0.0\n");
    assert!(
        log().contains("/v2/app/tags/list"),
        "the request went through the proxy: {}",
        log()
    );
    // Wrong proxy credentials: refused by the proxy, a clear error.
    let bad = format!("http://proxyuser:nope@127.0.0.1:{}", p.port);
    let o = tagpilot(&["scan", &image, "--insecure", "--proxy", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("nope"), "{}", stderr(&o));
    // The standard environment variable works too.
    let before = log().matches("/v2/app/tags/list").count();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(["scan", &image, "--insecure"])
        .env("HTTP_PROXY", &via)
        .env("http_proxy", &via)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        log().matches("/v2/app/tags/list").count() > before,
        "HTTP_PROXY was honoured: {}",
        log()
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn platforms_of_indexes_manifest_lists_and_single_manifests() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    push_with(
        &base,
        "multi",
        &["oci"],
        &[("PLATFORMS", "linux/amd64 linux/arm64/v8 linux/arm/v7")],
    );
    push_with(
        &base,
        "multi",
        &["docker"],
        &[("PLATFORMS", "linux/amd64 windows/amd64"), ("DOCKER", "1")],
    );
    push_with(&base, "multi", &["single"], &[]);
    push_with(&base, "multi", &["single-docker"], &[("DOCKER", "1")]);
    let (rt, gates) = (runtime(), default_gates());
    let client = insecure_client(&reg, "multi", &gates);
    let platforms = |tag: &str| -> Vec<String> {
        let digest = rt.block_on(client.head_digest(tag)).unwrap();
        rt.block_on(client.platforms(&digest))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        platforms("oci"),
        ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    );
    assert_eq!(platforms("docker"), ["linux/amd64", "windows/amd64"]);
    // A single manifest names its platform in its config blob.
    assert_eq!(platforms("single"), ["linux/amd64"]);
    assert_eq!(platforms("single-docker"), ["linux/amd64"]);
    let bad = rt.block_on(client.platforms("sha256:nothex"));
    assert!(
        matches!(bad, Err(tagpilot_registry::RegistryError::Config(_))),
        "{bad:?}"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let gone = rt.block_on(client.platforms(&missing));
    assert!(
        matches!(gone, Err(tagpilot_registry::RegistryError::NotFound { .. })),
        "{gone:?}"
    );

    // `resolve --explain` applies the platform gate live and says what it cannot judge.
    push_with(
        &base,
        "gated",
        &["1.0.0"],
        &[("PLATFORMS", "linux/amd64 linux/arm64/v8")],
    );
    push_with(&base, "gated", &["1.1.0"], &[]);
    let image = format!("127.0.0.1:{}/gated", reg.port);
    let policy = reg.dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: gated}\nspec:\n  imageRepositoryRef: {name: gated}\n  policy: {semver: {range: '>=1.0.0'}}\n  gates: {minAge: 1h, platforms: [linux/amd64, linux/arm64]}\n",
    )
    .unwrap();
    let policy = policy.to_string_lossy().into_owned();
    let o = tagpilot(&[
        "resolve",
        "--image",
        &image,
        "--insecure",
        "--policy",
        &policy,
        "--explain",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.starts_with("1.0.0\n"), "{out}");
    assert!(
        out.contains("gates:\n  1.1.0  held by platforms: no image for linux/arm64\n  1.0.0  passes every gate\n"),
        "{out}"
    );
    assert!(
        out.contains("note: minAge and repushHold need tagpilot's history"),
        "{out}"
    );
    // Without --explain the answer honours the gate too; the note goes to stderr.
    let o = tagpilot(&[
        "resolve",
        "--image",
        &image,
        "--insecure",
        "--policy",
        &policy,
    ]);
    assert_eq!(stdout(&o), "1.0.0\n");
    assert!(stderr(&o).contains("note: minAge"), "{}", stderr(&o));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn default_gates() -> tagpilot_registry::Gates {
    tagpilot_registry::Gates::new(tagpilot_registry::Limits::default())
}

/// A client for `repo` on the plain-HTTP test registry.
fn insecure_client(
    reg: &Server,
    repo: &str,
    gates: &tagpilot_registry::Gates,
) -> tagpilot_registry::RepoClient {
    let name =
        tagpilot_registry::ImageName::parse(&format!("127.0.0.1:{}/{repo}", reg.port)).unwrap();
    tagpilot_registry::RepoClient::new(
        &name,
        tagpilot_registry::ClientOptions {
            insecure: true,
            ..Default::default()
        },
        gates,
    )
    .unwrap()
}

#[test]
#[ignore = "needs docker-registry, sops and age; run by tests/run.sh"]
fn a_sops_encrypted_pull_secret_opens_an_authenticated_registry() {
    let reg = registry(Auth::HtpasswdTls);
    let d = reg.dir.path();
    let ca = d.join("ca.pem");
    let base = format!("https://127.0.0.1:{}", reg.port);
    push(
        &base,
        "app",
        &["1.0.0", "1.1.0"],
        Some(&format!("-u testuser:testpass --cacert {}", ca.display())),
    );
    let config = d.join("config");
    let secrets = d.join("secrets");
    std::fs::create_dir_all(&config).unwrap();
    let recipient = age_key(&secrets.join("sops-age/age.agekey"));
    let ca_pem = std::fs::read_to_string(&ca).unwrap().replace('\n', "\\n");
    std::fs::write(
        config.join("app.yaml"),
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: app, namespace: flux-system}}\nspec:\n  image: 127.0.0.1:{port}/app\n  interval: 1h\n  secretRef: {{name: regcred}}\n  certSecretRef: {{name: regca}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: app, namespace: flux-system}}\nspec:\n  imageRepositoryRef: {{name: app}}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: regca, namespace: flux-system}}\nstringData: {{ca.crt: \"{ca_pem}\"}}\n",
            port = reg.port
        ),
    )
    .unwrap();
    // The pull secret, encrypted by the real sops the way Flux users keep it in Git.
    let plain = d.join("regcred.yaml");
    std::fs::write(
        &plain,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: flux-system\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"127.0.0.1:{}\":{{\"auth\":\"dGVzdHVzZXI6dGVzdHBhc3M=\"}}}}}}'\n", reg.port),
    )
    .unwrap();
    let encrypt = |to: &str| {
        let out = run(std::process::Command::new(sops())
            .args([
                "encrypt",
                "--age",
                to,
                "--encrypted-regex",
                "^(data|stringData)$",
            ])
            .arg(&plain));
        std::fs::write(config.join("regcred.sops.yaml"), &out.stdout).unwrap();
    };
    encrypt(&recipient);
    let state = d.join("state");
    let run_once = || {
        tagpilot(&[
            "run",
            "--once",
            "--config",
            &config.to_string_lossy(),
            "--state-dir",
            &state.to_string_lossy(),
            "--secrets-dir",
            &secrets.to_string_lossy(),
        ])
    };
    let o = run_once();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("resolved to 1.1.0"), "{out}");
    // validate opens it too, given the same keys.
    let o = tagpilot(&[
        "validate",
        &config.to_string_lossy(),
        "--secrets-dir",
        &secrets.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("ok     Secret flux-system/regcred in regcred.sops.yaml"),
        "{}",
        stdout(&o)
    );

    // Encrypted for someone else: an error on that Secret naming the recipient, the rest loads.
    let other = age_key(&d.join("other.agekey"));
    encrypt(&other);
    let o = run_once();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains(&format!("Secret flux-system/regcred: cannot decrypt with SOPS: no age identity decrypts it: encrypted for age {other}; tagpilot has 1 age identity")),
        "{all}"
    );
    assert!(
        all.contains("imagepolicy/flux-system/app"),
        "the rest still runs: {all}"
    );
    assert!(
        !all.contains("dGVzdHVzZXI6dGVzdHBhc3M") && !all.contains("testpass"),
        "{all}"
    );

    // A value changed by hand after encryption: the MAC catches it.
    encrypt(&recipient);
    let file = config.join("regcred.sops.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "name: regcred",
        "name: regcred\n    labels: {tampered: \"yes\"}",
    );
    std::fs::write(&file, text).unwrap();
    let o = run_once();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("Secret flux-system/regcred: cannot decrypt with SOPS: MAC mismatch"),
        "{all}"
    );
    assert!(!all.contains("testpass"), "{all}");
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn scans_converge_under_a_registry_that_refuses_more_than_ten_requests_a_second() {
    let reg = registry(Auth::None);
    let base = format!("http://127.0.0.1:{}", reg.port);
    let tags: Vec<String> = (0..40).map(|i| format!("1.0.{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let repos: Vec<String> = (0..6).map(|i| format!("app{i}")).collect();
    for r in &repos {
        push(&base, r, &refs, None);
    }
    // Pages of 5: 48 tag-list requests in all, 8 in flight at most.
    let f = front(reg.port, "rate-above", 5);
    let images: Vec<String> = repos
        .iter()
        .map(|r| format!("127.0.0.1:{}/{r}", f.port))
        .collect();
    let mut args = vec!["scan", "--insecure", "--output", "json"];
    args.extend(images.iter().map(String::as_str));
    let o = tagpilot(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("\"tagCount\": 40").count(), 6, "{out}");
    let stats = front_stats(f.port);
    let ok = stats["statuses"]["200"].as_u64().unwrap_or(0);
    let refused = stats["statuses"]["429"].as_u64().unwrap_or(0);
    // Unlimited at first, then halved at the first refusals and kept under the limit: a few
    // 429s, not one per request.
    assert!(ok >= 48, "{stats}");
    // (With the rate fixed, the same run drew 18 refusals; adapting, 6.)
    assert!(refused <= 12, "a storm of 429s: {stats}");
    eprintln!("rate-above: {ok} answered, {refused} refused");
}
