//! The DICOM network side: the association acceptor (C-ECHO, C-STORE) that
//! feeds the durable spool.

pub mod access;
pub mod dimse;
pub mod presentation;
pub mod scp;
pub mod scu;
pub mod socket;
pub mod store;
pub mod stow;
pub mod tls;
