//! Training of the photo route's learned path (the MedSem-style generator of
//! `crate::models::photo::medsem`): the training data ([`dataset`]), the
//! losses ([`losses`]), one optimisation step ([`train`]) and the whole
//! `deidgate train photo` run ([`run`]). None of it runs in the gateway.

pub mod dataset;
pub mod losses;
pub mod run;
pub mod train;
