//! The audit trail (DESIGN §6).
