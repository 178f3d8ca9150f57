//! Tensor operations only training needs: stable losses, a max-pool whose
//! backward works for any kernel and stride, and a differentiable bilinear
//! resize. The operations the gateway also runs at inference stay in
//! `crate::models::ops`.

pub mod losses;
pub mod pool;
pub mod resize;
