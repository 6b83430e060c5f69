//! Tag selection as Flux's image-reflector-controller does it, made deterministic.
//!
//! Pure: no I/O, no clock. Given the tags of a repository and an image policy (semver range,
//! alphabetical or numerical order, optional `filterTags`), pick the latest tag, and on request
//! explain the fate of every tag.
//!
//! ```
//! use tagpilot_policy::{Choice, Exclusions, Policy};
//! let policy = Policy::new(Choice::semver("5.0.x").unwrap(), None);
//! let tags = ["5.0.0", "5.0.3", "5.1.0", "latest"];
//! assert_eq!(policy.select(&tags, &Exclusions::flux_default()).unwrap().tag, "5.0.3");
//! ```

mod constraint;
mod expand;
mod numeric;
mod select;
pub mod semver;

pub use constraint::{ConstraintError, Constraints, Mismatch};
pub use expand::Template;
pub use numeric::parse_go_float;
pub use select::compile;
pub use select::{
    Choice, Exclusions, Explanation, Order, Policy, PolicyError, Selection, TagFilter, TagReport,
    Verdict, DEFAULT_EXCLUSION,
};
