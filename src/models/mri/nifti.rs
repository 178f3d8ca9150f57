//! Minimal NIfTI-1 reader/writer (`.nii`, `.nii.gz`): enough for the
//! template, the training heads and the evaluation volumes. The affine comes
//! from the sform (else the qform, else pixdim) and is converted from NIfTI's
//! RAS+ world to DICOM's LPS patient coordinates, so every volume in this
//! module speaks LPS millimetres.

use super::Volume;
use anyhow::{bail, Context, Result};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};
use std::path::Path;

fn f32_at(b: &[u8], o: usize, le: bool) -> f32 {
    let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if le {
        f32::from_le_bytes(a)
    } else {
        f32::from_be_bytes(a)
    }
}

fn i16_at(b: &[u8], o: usize, le: bool) -> i16 {
    let a = [b[o], b[o + 1]];
    if le {
        i16::from_le_bytes(a)
    } else {
        i16::from_be_bytes(a)
    }
}

/// Read a NIfTI-1 file; intensities are returned scaled by scl_slope/inter.
pub fn read_nifti(path: &Path) -> Result<Volume> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("gunzip {}", path.display()))?;
        out
    } else {
        raw
    };
    parse_nifti(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Parse an in-memory NIfTI-1 single file.
pub fn parse_nifti(b: &[u8]) -> Result<Volume> {
    if b.len() < 352 {
        bail!("too short for a NIfTI-1 header");
    }
    let le = match (
        i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
    ) {
        (348, _) => true,
        (_, 348) => false,
        _ => bail!("not a NIfTI-1 file (sizeof_hdr != 348)"),
    };
    if &b[344..347] != b"n+1" {
        bail!("only single-file NIfTI-1 (n+1) is supported");
    }
    let ndim = i16_at(b, 40, le);
    if !(3..=7).contains(&ndim) {
        bail!("need a 3-D volume, header says {ndim} dimensions");
    }
    let dims = [
        i16_at(b, 42, le).max(1) as usize,
        i16_at(b, 44, le).max(1) as usize,
        i16_at(b, 46, le).max(1) as usize,
    ];
    let datatype = i16_at(b, 70, le);
    let pix = [f32_at(b, 80, le), f32_at(b, 84, le), f32_at(b, 88, le)];
    let vox_offset = f32_at(b, 108, le) as usize;
    let mut slope = f32_at(b, 112, le);
    let inter = f32_at(b, 116, le);
    if slope == 0.0 || !slope.is_finite() {
        slope = 1.0;
    }
    let n = dims[0] * dims[1] * dims[2];
    let bpv = match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        64 => 8,
        _ => bail!("unsupported NIfTI datatype {datatype}"),
    };
    let data_b = b
        .get(vox_offset..vox_offset + n * bpv)
        .context("file shorter than its image data")?;
    let mut data = Vec::with_capacity(n);
    for c in data_b.chunks_exact(bpv) {
        let v = match datatype {
            2 => c[0] as f32,
            256 => c[0] as i8 as f32,
            4 => i16_at(c, 0, le) as f32,
            512 => {
                let a = [c[0], c[1]];
                (if le {
                    u16::from_le_bytes(a)
                } else {
                    u16::from_be_bytes(a)
                }) as f32
            }
            8 | 768 => {
                let a = [c[0], c[1], c[2], c[3]];
                if datatype == 8 {
                    (if le {
                        i32::from_le_bytes(a)
                    } else {
                        i32::from_be_bytes(a)
                    }) as f32
                } else {
                    (if le {
                        u32::from_le_bytes(a)
                    } else {
                        u32::from_be_bytes(a)
                    }) as f32
                }
            }
            16 => f32_at(c, 0, le),
            _ => {
                let a: [u8; 8] = c.try_into().unwrap();
                (if le {
                    f64::from_le_bytes(a)
                } else {
                    f64::from_be_bytes(a)
                }) as f32
            }
        };
        data.push(v * slope + inter);
    }
    let qform_code = i16_at(b, 252, le);
    let sform_code = i16_at(b, 254, le);
    let mut ras = [[0.0f64; 4]; 4];
    ras[3][3] = 1.0;
    if sform_code > 0 {
        for (r, row) in ras.iter_mut().take(3).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = f32_at(b, 280 + 16 * r + 4 * c, le) as f64;
            }
        }
    } else if qform_code > 0 {
        let (qb, qc, qd) = (
            f32_at(b, 256, le) as f64,
            f32_at(b, 260, le) as f64,
            f32_at(b, 264, le) as f64,
        );
        let qa = (1.0 - (qb * qb + qc * qc + qd * qd)).max(0.0).sqrt();
        let qfac = if f32_at(b, 76, le) < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                qa * qa + qb * qb - qc * qc - qd * qd,
                2.0 * (qb * qc - qa * qd),
                2.0 * (qb * qd + qa * qc),
            ],
            [
                2.0 * (qb * qc + qa * qd),
                qa * qa + qc * qc - qb * qb - qd * qd,
                2.0 * (qc * qd - qa * qb),
            ],
            [
                2.0 * (qb * qd - qa * qc),
                2.0 * (qc * qd + qa * qb),
                qa * qa + qd * qd - qc * qc - qb * qb,
            ],
        ];
        let s = [pix[0] as f64, pix[1] as f64, pix[2] as f64 * qfac];
        for i in 0..3 {
            for j in 0..3 {
                ras[i][j] = r[i][j] * s[j];
            }
            ras[i][3] = f32_at(b, 268 + 4 * i, le) as f64;
        }
    } else {
        for i in 0..3 {
            ras[i][i] = pix[i].abs().max(1e-6) as f64;
        }
    }
    // RAS -> LPS: negate the first two world rows.
    let mut affine = ras;
    for row in affine.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    Ok(Volume { dims, data, affine })
}

/// Write a volume as gzipped NIfTI-1 with u8 voxels scaled to [0, max]: the
/// committed template files are small this way and the reader restores the
/// intensity scale from scl_slope.
pub fn write_nifti_u8_gz(path: &Path, vol: &Volume) -> Result<()> {
    let max = vol.data.iter().cloned().fold(0.0f32, f32::max).max(1e-6);
    let slope = max / 255.0;
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let dim: [i16; 8] = [
        3,
        vol.dims[0] as i16,
        vol.dims[1] as i16,
        vol.dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&2i16.to_le_bytes()); // DT_UINT8
    h[72..74].copy_from_slice(&8i16.to_le_bytes());
    let sp = super::volume::spacing(&vol.affine);
    let pixdim = [1.0f32, sp[0] as f32, sp[1] as f32, sp[2] as f32];
    for (i, p) in pixdim.iter().enumerate() {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[112..116].copy_from_slice(&slope.to_le_bytes());
    h[254..256].copy_from_slice(&2i16.to_le_bytes()); // sform_code = aligned
    for r in 0..3 {
        for c in 0..4 {
            let sign = if r < 2 { -1.0 } else { 1.0 }; // LPS -> RAS
            let v = (sign * vol.affine[r][c]) as f32;
            let o = 280 + 16 * r + 4 * c;
            h[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut gz = GzEncoder::new(f, Compression::best());
    gz.write_all(&h)?;
    let bytes: Vec<u8> = vol
        .data
        .iter()
        .map(|v| (v / slope).round().clamp(0.0, 255.0) as u8)
        .collect();
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}
