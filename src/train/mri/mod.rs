//! Training of the MRI face generator (generate mode of
//! `crate::models::mri`): the training heads ([`heads`]), the adversarial
//! critic ([`discriminator`]), the training loop ([`train`]) and the whole
//! `deidgate train mri` run ([`run`]). None of it runs in the gateway.

pub mod discriminator;
pub mod heads;
pub mod run;
pub mod train;
