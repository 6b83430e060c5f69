//! Arbitrary bytes as a `.dockerconfigjson` / `.dockercfg`: nothing may panic and an error
//! never quotes the input (it is credentials): no quote character, no run of the input's
//! string contents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpilot_registry::DockerConfig;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = DockerConfig::parse(data) {
        let message = e.to_string();
        assert!(!message.contains('"') && !message.contains('`'), "{message}");
        // Any string value of at least 12 characters in the input must not reappear.
        let text = String::from_utf8_lossy(data);
        for value in text.split('"').skip(1).step_by(2) {
            if value.len() >= 12 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                assert!(!message.contains(value), "{message}");
            }
        }
    }
    // And a config wrapped around the input, so that the nested shapes are reached.
    let wrapped = [&b"{\"auths\": {\"h\": "[..], data, b"}}"].concat();
    let _ = DockerConfig::parse(&wrapped);
});
