//! The Flux objects tagpilot reads — ImageRepository, ImagePolicy, ImageUpdateAutomation,
//! GitRepository, Receiver, Provider, Alert, Secret — as serde types with Flux's defaults and validation, and a
//! loader for a directory of multi-document YAML manifests.

mod duration;
pub mod gates;
mod load;
mod object;
mod secrets;
pub mod status;
mod types;

pub use duration::{parse_rfc3339, rfc3339, DurationError, GoDuration, Timeout};
pub use load::{
    load_dir, load_dir_with, load_files_with, load_str, load_str_with, Config, LoadError, Loaded,
    Source, MAX_FILE_BYTES,
};
pub use object::{
    build_policy, check_update_path, validate_image, FieldError, Kind, Object, Typed, MIN_INTERVAL,
};
pub use secrets::{sops_keys, SecretError, Secrets};
pub use status::{
    generation_of, Condition, ConditionStatus, ConditionType, Ending, Outcome, Status,
    SUSPENDED_MESSAGE,
};
pub use tagpilot_sops::{Keys as SopsKeys, SopsError};
pub use types::*;
