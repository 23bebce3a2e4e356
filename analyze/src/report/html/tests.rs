use super::evidence::{fold, link_parents, WorkloadEvents};
use super::*;
