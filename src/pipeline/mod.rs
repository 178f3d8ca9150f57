//! Stages between receiving an object and handing it to a sink.

pub mod background;
pub mod batch;
pub mod chest;
pub mod filter;
pub mod forward;
pub mod mri;
pub mod output;
pub mod photo;
pub mod precheck;
pub mod quarantine;
pub mod queue_index;
pub mod router;
pub mod routes;
pub mod series;
pub mod spool;
pub mod wal;
