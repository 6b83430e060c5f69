//! SOPS-encrypted manifests, decrypted in memory: the data key from an `age` recipient entry
//! (x25519 identities), each `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value with the path of
//! its keys as additional data (`stringData:.dockerconfigjson:`), and the MAC — SHA-512 over
//! every value in document order, encrypted under `lastmodified` — checked before anything is
//! returned. The walk follows SOPS's own (`sops.go`): sequences do not extend the path, nulls
//! are skipped, `encrypted_regex`/`unencrypted_suffix`… decide which values were encrypted.
//!
//! Errors name keys and recipients, never a value.

use std::io::Read as _;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine as _;
use sha2::{Digest as _, Sha512};
use tagpilot_yaml::Node;

/// SOPS seeds the MAC with these bytes when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Why a document could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SopsError {
    #[error("not a SOPS file tagpilot can read: {0}")]
    Format(String),
    #[error("no age identity decrypts it: encrypted for {}{}; tagpilot has {have} age identit{}", recipients(.age), other_groups(.others), if *.have == 1 { "y" } else { "ies" })]
    NoKey {
        /// The age recipients of the file.
        age: Vec<String>,
        /// Other key groups (`pgp 1F2E…`, `kms`, …), which tagpilot does not decrypt.
        others: Vec<String>,
        have: usize,
    },
    #[error("cannot decrypt the value at {path}: {reason}")]
    Value { path: String, reason: String },
    #[error("MAC mismatch: the file was changed after it was encrypted (or by hand)")]
    Mac,
}

fn recipients(age: &[String]) -> String {
    if age.is_empty() {
        "no age recipient".to_owned()
    } else {
        format!("age {}", age.join(", "))
    }
}

fn other_groups(others: &[String]) -> String {
    if others.is_empty() {
        String::new()
    } else {
        format!(" and {} (not supported)", others.join(", "))
    }
}

/// The age identities tagpilot decrypts with.
#[derive(Default)]
pub struct Keys {
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} age identities)", self.identities.len())
    }
}

impl Keys {
    /// Adds the identities of an age key file (`AGE-SECRET-KEY-1…` lines; `#` comments).
    /// The error names the line, never its content.
    pub fn add(&mut self, text: &str) -> Result<usize, String> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id: age::x25519::Identity = line
                .parse()
                .map_err(|_| format!("line {}: not an age identity (AGE-SECRET-KEY-1…)", i + 1))?;
            self.identities.push(id);
            n += 1;
        }
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

/// Whether a parsed document carries SOPS metadata.
pub fn is_encrypted(doc: &Node) -> bool {
    doc.get("sops")
        .is_some_and(|m| m.get("mac").is_some() || m.get("lastmodified").is_some())
}

/// Which values SOPS encrypted, from the file's metadata.
struct Rules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
    mac_only_encrypted: bool,
}

impl Rules {
    fn from(meta: &Node) -> Result<Self, SopsError> {
        let text = |k: &str| meta.get(k).and_then(Node::as_str).map(str::to_owned);
        let re = |k: &str| {
            text(k)
                .map(|p| {
                    regex::Regex::new(&p)
                        .map_err(|e| SopsError::Format(format!("sops.{k} is not a regex: {e}")))
                })
                .transpose()
        };
        for unsupported in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if text(unsupported).is_some() {
                return Err(SopsError::Format(format!(
                    "sops.{unsupported} (encryption chosen by comments) is not supported"
                )));
            }
        }
        Ok(Rules {
            unencrypted_suffix: text("unencrypted_suffix"),
            encrypted_suffix: text("encrypted_suffix"),
            unencrypted_regex: re("unencrypted_regex")?,
            encrypted_regex: re("encrypted_regex")?,
            mac_only_encrypted: meta
                .get("mac_only_encrypted")
                .and_then(Node::as_bool)
                .unwrap_or(false),
        })
    }

    /// SOPS's `shouldBeEncrypted`, without the comment rules.
    fn encrypted(&self, path: &[String]) -> bool {
        let mut encrypted = true;
        if let Some(s) = &self.unencrypted_suffix {
            if path.iter().any(|p| p.ends_with(s.as_str())) {
                encrypted = false;
            }
        }
        if let Some(s) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(s.as_str()));
        }
        if let Some(r) = &self.unencrypted_regex {
            if path.iter().any(|p| r.is_match(p)) {
                encrypted = false;
            }
        }
        if let Some(r) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| r.is_match(p));
        }
        encrypted
    }
}

/// The document without its `sops` key, every value decrypted, the MAC checked.
pub fn decrypt(doc: &Node, keys: &Keys) -> Result<Node, SopsError> {
    let Node::Map(map) = doc else {
        return Err(SopsError::Format("the document is not a mapping".into()));
    };
    let meta = doc
        .get("sops")
        .filter(|m| m.is_map())
        .ok_or_else(|| SopsError::Format("no sops metadata".into()))?;
    let rules = Rules::from(meta)?;
    let key = data_key(meta, keys)?;
    let mut mac = Sha512::new();
    if rules.mac_only_encrypted {
        mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut out = Vec::with_capacity(map.len());
    let mut path = Vec::new();
    for (k, v) in map {
        if k.as_str() == Some("sops") {
            continue;
        }
        let name = key_name(k)?;
        path.push(name);
        let plain = walk(v, &mut path, &rules, &key, &mut mac)?;
        path.pop();
        out.push((k.clone(), plain));
    }
    let stored = meta
        .get("mac")
        .and_then(Node::as_str)
        .ok_or_else(|| SopsError::Format("sops.mac is missing".into()))?;
    let modified = meta
        .get("lastmodified")
        .and_then(Node::as_str)
        .ok_or_else(|| SopsError::Format("sops.lastmodified is missing".into()))?;
    let expected = open(stored, &key, modified).map_err(|_| SopsError::Mac)?;
    let computed: String = mac.finalize().iter().map(|b| format!("{b:02X}")).collect();
    // Not secret: both sides are hashes of the content.
    if expected.0 != computed.as_bytes() {
        return Err(SopsError::Mac);
    }
    Ok(Node::Map(out))
}

fn key_name(k: &Node) -> Result<String, SopsError> {
    k.as_str()
        .map(str::to_owned)
        .ok_or_else(|| SopsError::Format("a mapping key is not a string".into()))
}

fn walk(
    v: &Node,
    path: &mut Vec<String>,
    rules: &Rules,
    key: &[u8; 32],
    mac: &mut Sha512,
) -> Result<Node, SopsError> {
    match v {
        Node::Map(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                path.push(key_name(k)?);
                let plain = walk(v, path, rules, key, mac)?;
                path.pop();
                out.push((k.clone(), plain));
            }
            Ok(Node::Map(out))
        }
        // Items of a sequence share their key's path, as in SOPS.
        Node::Seq(items) => items
            .iter()
            .map(|i| walk(i, path, rules, key, mac))
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Seq),
        Node::Null => Ok(Node::Null),
        leaf => {
            let encrypted = rules.encrypted(path);
            let plain = if encrypted {
                let Node::Str(s) = leaf else {
                    return Err(SopsError::Value {
                        path: path.join("."),
                        reason: "expected an encrypted string".into(),
                    });
                };
                decrypt_leaf(s, key, path)?
            } else {
                leaf.clone()
            };
            if !rules.mac_only_encrypted || encrypted {
                mac.update(mac_bytes(&plain));
            }
            Ok(plain)
        }
    }
}

/// A value's bytes in the MAC, as SOPS's `ToBytes` writes them.
fn mac_bytes(v: &Node) -> Vec<u8> {
    match v {
        Node::Str(s) => s.as_bytes().to_vec(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        // Go's FormatFloat(f, 'f', -1, 64): `3`, not `3.0`; Rust's f64 Display agrees.
        Node::Float(f) => format!("{f}").into_bytes(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::UInt(u) => u.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

fn decrypt_leaf(s: &str, key: &[u8; 32], path: &[String]) -> Result<Node, SopsError> {
    // SOPS leaves empty values as they are.
    if s.is_empty() {
        return Ok(Node::Str(String::new()));
    }
    let aad = format!("{}:", path.join(":"));
    let fail = |reason: &str| SopsError::Value {
        path: path.join("."),
        reason: reason.to_owned(),
    };
    let (bytes, kind) = open(s, key, &aad).map_err(|e| fail(&e))?;
    let text = || String::from_utf8(bytes.clone()).map_err(|_| fail("not UTF-8"));
    Ok(match kind.as_str() {
        "str" | "time" | "comment" => Node::Str(text()?),
        "bytes" => Node::Str(String::from_utf8_lossy(&bytes).into_owned()),
        "int" => Node::Int(
            text()?
                .parse::<i64>()
                .map_err(|_| fail("type int, value is not an integer"))?,
        ),
        "float" => Node::Float(
            text()?
                .parse::<f64>()
                .map_err(|_| fail("type float, value is not a number"))?,
        ),
        "bool" => Node::Bool(match text()?.as_str() {
            "True" | "true" | "1" | "t" | "T" | "TRUE" => true,
            "False" | "false" | "0" | "f" | "F" | "FALSE" => false,
            _ => return Err(fail("type bool, value is not a boolean")),
        }),
        other => return Err(fail(&format!("unknown value type '{other}'"))),
    })
}

/// Opens one `ENC[AES256_GCM,…]` value: (plaintext, type).
fn open(s: &str, key: &[u8; 32], aad: &str) -> Result<(Vec<u8>, String), String> {
    let inner = s
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("not an ENC[AES256_GCM,…] value")?;
    let (mut data, mut iv, mut tag, mut kind) = (None, None, None, None);
    for part in inner.split(',') {
        match part.split_once(':') {
            Some(("data", v)) => data = Some(v),
            Some(("iv", v)) => iv = Some(v),
            Some(("tag", v)) => tag = Some(v),
            Some(("type", v)) => kind = Some(v),
            _ => return Err("malformed ENC value".into()),
        }
    }
    let b64 = |v: Option<&str>, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v.ok_or(format!("no {what}"))?)
            .map_err(|_| format!("{what} is not base64"))
    };
    let (mut data, iv, tag) = (b64(data, "data")?, b64(iv, "iv")?, b64(tag, "tag")?);
    // SOPS uses 32-byte nonces; anything else was not written by it.
    if iv.len() != 32 || tag.len() != 16 {
        return Err("unexpected iv or tag length".into());
    }
    data.extend_from_slice(&tag);
    let cipher = AesGcm::<Aes256, U32>::new(key.into());
    let plain = cipher
        .decrypt(
            aes_gcm::aead::generic_array::GenericArray::from_slice(&iv),
            Payload {
                msg: &data,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| {
            "authentication failed (wrong key, or the value or its key path was changed)".to_owned()
        })?;
    Ok((plain, kind.unwrap_or("str").to_owned()))
}

/// The file's data key, from the first age entry an identity opens.
fn data_key(meta: &Node, keys: &Keys) -> Result<[u8; 32], SopsError> {
    let entries = |k: &str| -> Vec<&Node> {
        meta.get(k)
            .and_then(Node::as_seq)
            .map(|s| s.iter().filter(|m| m.is_map()).collect())
            .unwrap_or_default()
    };
    let field = |m: &Node, k: &str| m.get(k).and_then(Node::as_str).map(str::to_owned);
    let age_entries = entries("age");
    let mut others: Vec<String> = entries("pgp")
        .iter()
        .map(|m| format!("pgp {}", field(m, "fp").unwrap_or_default()))
        .collect();
    for group in ["kms", "gcp_kms", "azure_kv", "hc_vault"] {
        let n = entries(group).len();
        if n > 0 {
            others.push(format!("{n} {group} key(s)"));
        }
    }
    let identities = keys.identities.iter().map(|i| i as &dyn age::Identity);
    for entry in &age_entries {
        let Some(enc) = field(entry, "enc") else {
            continue;
        };
        let Ok(decryptor) = age::Decryptor::new(age::armor::ArmoredReader::new(enc.as_bytes()))
        else {
            continue;
        };
        let Ok(mut reader) = decryptor.decrypt(identities.clone()) else {
            continue;
        };
        let mut out = Vec::new();
        if reader.read_to_end(&mut out).is_ok() {
            if let Ok(key) = <[u8; 32]>::try_from(out.as_slice()) {
                return Ok(key);
            }
        }
    }
    Err(SopsError::NoKey {
        age: age_entries
            .iter()
            .filter_map(|m| field(m, "recipient"))
            .collect(),
        others,
        have: keys.len(),
    })
}
