//! Files encrypted by the real sops and age (tests/data, see its README).
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion

use tagpilot_sops::{decrypt, is_encrypted, Keys, SopsError};

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn keys(files: &[&str]) -> Keys {
    let mut k = Keys::default();
    for f in files {
        assert_eq!(k.add(&data(f)).unwrap(), 1);
    }
    k
}

fn doc(name: &str) -> tagpilot_yaml::Node {
    tagpilot_yaml::document(&data(name)).unwrap()
}

const AUTH: &str = r#"{"auths":{"127.0.0.1:5000":{"auth":"dGVzdHVzZXI6cGxhbnRlZC1wYXNz"}}}"#;

#[test]
fn yaml_with_an_encrypted_regex_decrypts_and_keeps_the_rest() {
    let d = doc("secret.sops.yaml");
    assert!(is_encrypted(&d));
    let plain = decrypt(&d, &keys(&["test.agekey"])).unwrap().into_json();
    assert_eq!(
        plain["stringData"][".dockerconfigjson"].as_str(),
        Some(AUTH)
    );
    assert_eq!(plain["data"]["note"].as_str(), Some("aGVsbG8="));
    assert_eq!(plain["metadata"]["name"].as_str(), Some("regcred"));
    assert!(plain.get("sops").is_none());
}

#[test]
fn json_with_every_value_encrypted_and_typed_values() {
    let d = tagpilot_yaml::document(&data("typed.sops.json")).unwrap();
    let plain = decrypt(&d, &keys(&["test.agekey"])).unwrap().into_json();
    assert_eq!(plain["kind"].as_str(), Some("Secret"));
    // SOPS reads JSON numbers as floats (type:float), as its MAC does.
    assert_eq!(plain["extra"]["count"].as_f64(), Some(3.0));
    assert_eq!(plain["extra"]["ratio"].as_f64(), Some(1.5));
    assert_eq!(plain["extra"]["on"].as_bool(), Some(true));
    assert_eq!(plain["extra"]["list"][1].as_f64(), Some(2.0));
    assert_eq!(plain["extra"]["list"][2].as_bool(), Some(false));
    assert!(plain["extra"]["none"].is_null());
    assert_eq!(plain["extra"]["empty"].as_str(), Some(""));
}

#[test]
fn mac_only_encrypted_and_a_second_recipient() {
    // Encrypted for both keys: either opens it.
    for k in ["test.agekey", "other.agekey"] {
        let plain = decrypt(&doc("maconly.sops.yaml"), &keys(&[k]))
            .unwrap()
            .into_json();
        assert_eq!(
            plain["stringData"][".dockerconfigjson"].as_str(),
            Some(AUTH)
        );
    }
}

#[test]
fn the_wrong_key_names_the_recipients_and_no_key_material() {
    let e = decrypt(&doc("other.sops.yaml"), &keys(&["test.agekey"])).unwrap_err();
    let recipient = data("other.agekey")
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap()
        .to_owned();
    assert!(
        matches!(&e, SopsError::NoKey { age, have: 1, .. } if age == &vec![recipient.clone()]),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&recipient), "{text}");
    assert!(!text.contains("AGE-SECRET-KEY"), "{text}");
    let none = decrypt(&doc("other.sops.yaml"), &Keys::default()).unwrap_err();
    assert!(
        none.to_string().ends_with("tagpilot has 0 age identities"),
        "{none}"
    );
}

#[test]
fn tampering_is_caught_and_never_quoted() {
    let k = keys(&["test.agekey"]);
    // An unencrypted value changed: the MAC no longer matches.
    let renamed = data("secret.sops.yaml").replace("name: regcred", "name: evil");
    let e = decrypt(&tagpilot_yaml::document(&renamed).unwrap(), &k).unwrap_err();
    assert_eq!(e, SopsError::Mac);
    // An encrypted value moved to another key: its additional data no longer matches.
    let moved = data("secret.sops.yaml").replace("note:", "other:");
    let e = decrypt(&tagpilot_yaml::document(&moved).unwrap(), &k).unwrap_err();
    assert!(
        matches!(&e, SopsError::Value { path, .. } if path == "data.other"),
        "{e:?}"
    );
    // A value removed: the MAC covers it.
    let mut d = doc("secret.sops.yaml");
    let tagpilot_yaml::Node::Map(top) = &mut d else {
        panic!("a mapping")
    };
    let data = top
        .iter_mut()
        .find(|(k, _)| k.as_str() == Some("data"))
        .map(|(_, v)| v);
    let Some(tagpilot_yaml::Node::Map(data)) = data else {
        panic!("data is a mapping")
    };
    let before = data.len();
    data.retain(|(k, _)| k.as_str() != Some("note"));
    assert_eq!(data.len(), before - 1);
    assert_eq!(decrypt(&d, &k).unwrap_err(), SopsError::Mac);
    for e in [e.to_string(), SopsError::Mac.to_string()] {
        assert!(!e.contains("dGVzdHVzZXI") && !e.contains("aGVsbG8"), "{e}");
    }
    // Not SOPS at all, or an unknown layout.
    let plain = tagpilot_yaml::document("kind: Secret\nsops: {version: 3}\n").unwrap();
    assert!(!is_encrypted(&plain));
    assert!(matches!(
        decrypt(&plain, &k),
        Err(SopsError::NoKey { .. } | SopsError::Format(_))
    ));
}

#[test]
fn key_files_refuse_garbage_without_quoting_it() {
    let mut k = Keys::default();
    let e = k
        .add("# created: now\nAGE-SECRET-KEY-1NOTAKEY\n")
        .unwrap_err();
    assert_eq!(e, "line 2: not an age identity (AGE-SECRET-KEY-1…)");
    assert!(k.is_empty());
}
