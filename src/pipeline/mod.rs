//! Transport: the spool and its log, the per-instance stage, the workers,
//! series holding, the router and the forward queues. Pixel work is done by
//! `crate::routes`, reached only through its registry.

pub mod background;
pub mod batch;
pub mod dead_letter;
pub mod disk;
pub mod duplicates;
pub mod filter;
pub mod forward;
pub mod forwarder;
pub mod guard;
pub mod instance;
pub mod output;
pub mod precheck;
pub mod quarantine;
pub mod queue_index;
pub mod recovery;
pub mod refused;
pub mod router;
pub mod series;
pub mod spool;
pub mod wal;
pub mod workers;
