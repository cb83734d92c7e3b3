//! `RawRules` → `RuleSet`: every error collected, each with file:line:col.
