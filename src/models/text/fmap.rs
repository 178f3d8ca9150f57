//! [`Fmap`]: the channel-major feature map the PP-OCR networks take and
//! return (the layout of their ONNX exports), and its NHWC twin for the
//! shared convolution path.

use crate::models::ops::nhwc::Nhwc;

/// A channel-major (C×H×W) f32 feature map of one image.
#[derive(Clone, Debug)]
pub struct Fmap {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Fmap {
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), c * h * w, "feature map size");
        Self { c, h, w, data }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// The same map in NHWC order (a batch of one).
    pub(crate) fn to_nhwc(&self) -> Nhwc {
        let mut data = vec![0f32; self.data.len()];
        for (ch, plane) in self.data.chunks_exact(self.plane()).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                data[p * self.c + ch] = *v;
            }
        }
        Nhwc::new(1, self.h, self.w, self.c, data)
    }

    pub(crate) fn from_nhwc(x: &Nhwc) -> Self {
        let plane = x.h * x.w;
        let mut data = vec![0f32; x.data.len()];
        for (p, px) in x.data.chunks_exact(x.c).enumerate() {
            for (ch, v) in px.iter().enumerate() {
                data[ch * plane + p] = *v;
            }
        }
        Self::new(x.c, x.h, x.w, data)
    }
}
