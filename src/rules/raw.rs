//! Rule files as serde reads them, spans kept for messages.
