//! Buckets named inside configuration writes (replication, inventory,
//! logging, analytics).
