//! Helpers for tests and benchmarks that run against real services.
#![forbid(unsafe_code)]

pub mod access;
pub mod analytics;
pub mod baseline;
pub mod bench;
pub mod cqrs_repository;
pub mod db;
pub mod fixtures;
pub mod own_nats;
pub mod own_postgres;
pub mod own_redis;
pub mod schedule;
pub mod server;
pub mod smtp_sink;
pub mod storm;
