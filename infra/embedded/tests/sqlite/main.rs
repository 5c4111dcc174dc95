//! The SQLite adapters on real database files, in one test binary (one link instead of three).
mod contract;
mod credentials;
mod unreadable_rows;
