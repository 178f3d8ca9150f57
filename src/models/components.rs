//! Connected components of a boolean grid, 6-connected in 3-D (a 2-D image
//! is a grid one slice deep, and then 4-connected): the MRI route keeps the
//! largest of a head mask, the text route searches each group of bright
//! cells.

/// Labels `1..=count` in the order each component's first element comes in
/// the grid (x fastest); 0 where the grid is not set.
pub struct Components {
    pub label: Vec<u32>,
    pub count: u32,
}

impl Components {
    /// The components of `m`, a grid of `dims = [nx, ny, nz]` (x fastest).
    pub fn of(m: &[bool], dims: [usize; 3]) -> Self {
        let [nx, ny, nz] = dims;
        debug_assert_eq!(m.len(), nx * ny * nz);
        let mut label = vec![0u32; m.len()];
        let mut count = 0u32;
        let mut stack = Vec::new();
        for s in 0..m.len() {
            if !m[s] || label[s] != 0 {
                continue;
            }
            count += 1;
            label[s] = count;
            stack.push(s);
            while let Some(p) = stack.pop() {
                let (i, j, k) = (p % nx, (p / nx) % ny, p / (nx * ny));
                let mut push = |q: usize| {
                    if m[q] && label[q] == 0 {
                        label[q] = count;
                        stack.push(q);
                    }
                };
                if i > 0 {
                    push(p - 1);
                }
                if i + 1 < nx {
                    push(p + 1);
                }
                if j > 0 {
                    push(p - nx);
                }
                if j + 1 < ny {
                    push(p + nx);
                }
                if k > 0 {
                    push(p - nx * ny);
                }
                if k + 1 < nz {
                    push(p + nx * ny);
                }
            }
        }
        Self { label, count }
    }

    /// Elements per label (index 0: unset elements).
    pub fn sizes(&self) -> Vec<usize> {
        let mut n = vec![0usize; self.count as usize + 1];
        for &l in &self.label {
            n[l as usize] += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_labelled_in_scan_order() {
        // 4 x 3, one slice:
        // X . . X
        // X . . X
        // . . X X
        let m = [
            true, false, false, true, true, false, false, true, false, false, true, true,
        ];
        let c = Components::of(&m, [4, 3, 1]);
        assert_eq!(c.count, 2);
        assert_eq!(c.label, vec![1, 0, 0, 2, 1, 0, 0, 2, 0, 0, 2, 2]);
        assert_eq!(c.sizes(), vec![6, 2, 4]);
    }

    #[test]
    fn slices_connect_through_z_only_face_to_face() {
        // Two 2 x 1 slices: (0,0,0) and (0,0,1) touch; (1,0,0) and (0,0,1) only diagonally.
        let c = Components::of(&[true, false, true, false], [2, 1, 2]);
        assert_eq!(c.count, 1);
        let c = Components::of(&[false, true, true, false], [2, 1, 2]);
        assert_eq!(c.count, 2);
    }
}
