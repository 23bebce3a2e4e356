//! Container context from cgroup ids (being written).
