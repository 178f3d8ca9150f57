//! deidgate: a DICOM storage destination that de-identifies what it receives
//! and forwards it to a research archive. See DESIGN.md for the data flow.

pub mod admin;
pub mod allocator;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod deid;
pub mod dicom;
pub mod health;
pub mod keystore;
pub mod metrics;
pub mod models;
pub mod net;
pub mod pipeline;
pub mod reid;
pub mod routes;
pub mod runtime;
pub mod serve;
pub mod train;
