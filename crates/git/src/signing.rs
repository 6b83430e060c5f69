//! Commit signatures: OpenPGP (Secret key `git.asc`, optional `passphrase`) and SSH (`identity`,
//! optional `password`), in the formats `git verify-commit` checks.

use std::fmt;

use pgp::composed::{ArmorOptions, Deserializable, DetachedSignature, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::Password;

/// A commit signer. `Debug` never prints key material.
pub enum Signer {
    OpenPgp {
        key: Box<SignedSecretKey>,
        passphrase: String,
    },
    Ssh(Box<ssh_key::PrivateKey>),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::OpenPgp { .. } => f.write_str("Signer::OpenPgp(***)"),
            Signer::Ssh(k) => write!(f, "Signer::Ssh({})", k.algorithm()),
        }
    }
}

/// What is wrong with `git.asc`, never quoting it: the parser's own messages carry the bytes
/// it choked on (`armor header Error { input: [108, 70, …] }`), which are the key.
fn openpgp_problem(armored: &str, e: &pgp::errors::Error) -> String {
    const BEGIN: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";
    if !armored.contains(BEGIN) {
        return if armored.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            "git.asc holds a public key: the private key is needed to sign".to_owned()
        } else {
            format!("git.asc is not an OpenPGP private key: missing armor header ({BEGIN})")
        };
    }
    let after_begin = armored.split(BEGIN).nth(1).unwrap_or_default();
    let blank_after_headers = after_begin
        .lines()
        .skip(1)
        .find(|l| !l.contains(": "))
        .is_some_and(|l| l.trim().is_empty());
    if !blank_after_headers {
        return "git.asc is not a valid OpenPGP private key: the armor needs a blank line after \
                the BEGIN line (and after any header lines)"
            .to_owned();
    }
    // The variant name only (`Armor`, `InvalidInput`, …): a fixed identifier from the code.
    let debug = format!("{e:?}");
    let kind: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!(
        "git.asc is not a valid OpenPGP private key ({kind}): check the armor's base64 lines \
         and its END line"
    )
}

impl Signer {
    /// An armored OpenPGP secret key with exactly one key (Flux's `git.asc`).
    pub fn openpgp(armored: &str, passphrase: Option<&str>) -> Result<Self, String> {
        let mut keys = SignedSecretKey::from_armor_many(std::io::Cursor::new(armored.as_bytes()))
            .map_err(|e| openpgp_problem(armored, &e))?
            .0;
        let key = keys
            .next()
            .ok_or("no OpenPGP secret key in git.asc")?
            .map_err(|e| openpgp_problem(armored, &e))?;
        if keys.next().is_some() {
            return Err("git.asc must hold exactly one OpenPGP key".into());
        }
        let signer = Signer::OpenPgp {
            key: Box::new(key),
            passphrase: passphrase.unwrap_or("").to_owned(),
        };
        // Unlock once now, so a wrong passphrase is a configuration error, not a failed round.
        signer.sign(b"tagpilot key check")?;
        Ok(signer)
    }

    /// An OpenSSH private key (ed25519, ECDSA, RSA), decrypted with `password` if it is encrypted.
    pub fn ssh(identity: &str, password: Option<&str>) -> Result<Self, String> {
        let key = ssh_key::PrivateKey::from_openssh(identity)
            .map_err(|e| format!("invalid SSH signing key: {e}"))?;
        let key = if key.is_encrypted() {
            let pw =
                password.ok_or("the SSH signing key is encrypted and no password was given")?;
            key.decrypt(pw)
                .map_err(|_| "cannot decrypt the SSH signing key: wrong password".to_owned())?
        } else {
            key
        };
        Ok(Signer::Ssh(Box::new(key)))
    }

    /// The armored signature of `data` (a commit without its signature header).
    pub fn sign(&self, data: &[u8]) -> Result<String, String> {
        match self {
            Signer::OpenPgp { key, passphrase } => {
                let pw = if passphrase.is_empty() {
                    Password::empty()
                } else {
                    Password::from(passphrase.as_str())
                };
                let sig = DetachedSignature::sign_binary_data(
                    rand::thread_rng(),
                    &key.primary_key,
                    &pw,
                    HashAlgorithm::Sha256,
                    data,
                )
                .map_err(|e| format!("OpenPGP signing failed: {e}"))?;
                sig.to_armored_string(ArmorOptions::default())
                    .map_err(|e| format!("OpenPGP armor: {e}"))
            }
            Signer::Ssh(key) => {
                let sig = key
                    .sign("git", ssh_key::HashAlg::Sha512, data)
                    .map_err(|e| format!("SSH signing failed: {e}"))?;
                sig.to_pem(ssh_key::LineEnding::LF)
                    .map_err(|e| format!("SSH signature encoding: {e}"))
            }
        }
    }
}
