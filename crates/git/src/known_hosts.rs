//! OpenSSH `known_hosts` checking: plain and `[host]:port` patterns, comma lists, hashed
//! entries (`|1|salt|hash`, HMAC-SHA1 of the host), `@revoked` markers, negations. The file is
//! parsed by `ssh-key`; the matching rules are ours. Pure.

use hmac::{Hmac, Mac};
use ssh_key::known_hosts::{HostPatterns, KnownHosts, Marker};

/// Whether `key_blob` (the server's raw public key) is a known key for `host` on `port`.
pub fn is_known(known_hosts: &str, host: &str, port: u16, key_blob: &[u8]) -> bool {
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    let mut accepted = false;
    // A line ssh-key cannot read (an unknown key type, a broken key) names no usable key.
    for entry in KnownHosts::new(known_hosts).flatten() {
        let revoked = match entry.marker() {
            None => false,
            Some(Marker::Revoked) => true,
            // Host certificates are not supported; the line is skipped.
            Some(Marker::CertAuthority) => continue,
        };
        if !hosts_match(entry.host_patterns(), &name) {
            continue;
        }
        let Ok(blob) = entry.public_key().to_bytes() else {
            continue;
        };
        if blob == key_blob {
            if revoked {
                return false;
            }
            accepted = true;
        }
    }
    accepted
}

fn hosts_match(patterns: &HostPatterns, name: &str) -> bool {
    let list = match patterns {
        HostPatterns::HashedName { salt, hash } => return hashed_match(salt, hash, name),
        HostPatterns::Patterns(list) => list,
    };
    let mut matched = false;
    for p in list {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if glob(p, name) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(salt: &[u8], hash: &[u8], name: &str) -> bool {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(hash).is_ok()
}

/// `*` and `?` wildcards, case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (
        pattern.to_lowercase().chars().collect(),
        text.to_lowercase().chars().collect(),
    );
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn blob() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap_or_default()
    }

    #[test]
    fn plain_port_and_lists() {
        assert!(is_known(
            &format!("github.com ssh-ed25519 {KEY}"),
            "github.com",
            22,
            &blob()
        ));
        assert!(!is_known(
            &format!("github.com ssh-ed25519 {KEY}"),
            "gitlab.com",
            22,
            &blob()
        ));
        assert!(is_known(
            &format!("[127.0.0.1]:2222 ssh-ed25519 {KEY}"),
            "127.0.0.1",
            2222,
            &blob()
        ));
        assert!(!is_known(
            &format!("127.0.0.1 ssh-ed25519 {KEY}"),
            "127.0.0.1",
            2222,
            &blob()
        ));
        assert!(is_known(
            &format!("a.example,*.corp ssh-ed25519 {KEY}"),
            "git.corp",
            22,
            &blob()
        ));
        assert!(!is_known(
            &format!("*.corp,!bad.corp ssh-ed25519 {KEY}"),
            "bad.corp",
            22,
            &blob()
        ));
        assert!(!is_known(
            &format!("github.com ssh-ed25519 {KEY}\n@revoked github.com ssh-ed25519 {KEY}"),
            "github.com",
            22,
            &blob()
        ));
        assert!(!is_known(
            "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
            "github.com",
            22,
            &blob()
        ));
    }

    #[test]
    fn hashed_entries() {
        // Made the way ssh-keygen -H does: HMAC-SHA1 keyed by a random salt over the host name.
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY}",
            b64.encode(salt),
            b64.encode(hash)
        );
        assert!(is_known(&line, "127.0.0.1", 2222, &blob()));
        assert!(!is_known(&line, "127.0.0.1", 22, &blob()));
    }
}
