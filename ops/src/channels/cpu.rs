//! CPU reference for channel gather and concat: copies (and adds) of contiguous `H*W` planes.

use shiftgrad_tensor::{Real, Shape, Tensor};

/// `out[b, j] = x[b, idx[j]]` (indices already checked against `C`).
pub fn gather_forward<T: Real>(x: &Tensor<T>, idx: &[usize], out_shape: Shape) -> Tensor<T> {
    let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let plane = h * w;
    let k = idx.len();
    let mut y = Tensor::zeros(out_shape);
    let (src, dst) = (x.data(), y.data_mut());
    for b in 0..n {
        for (j, &ci) in idx.iter().enumerate() {
            let from = (b * c + ci) * plane;
            let to = (b * k + j) * plane;
            dst[to..to + plane].copy_from_slice(&src[from..from + plane]);
        }
    }
    y
}

/// `dx[b, c] = sum_{j: idx[j] = c} dy[b, j]`, zero where no entry gathered channel `c`.
pub fn gather_backward<T: Real>(dy: &Tensor<T>, idx: &[usize], x_dims: [usize; 4]) -> Tensor<T> {
    let [n, c, h, w] = x_dims;
    let plane = h * w;
    let k = idx.len();
    let mut dx = Tensor::zeros(x_dims);
    let (src, dst) = (dy.data(), dx.data_mut());
    for b in 0..n {
        for (j, &ci) in idx.iter().enumerate() {
            let from = (b * k + j) * plane;
            let to = (b * c + ci) * plane;
            for (acc, &g) in dst[to..to + plane].iter_mut().zip(&src[from..from + plane]) {
                *acc += g;
            }
        }
    }
    dx
}

/// Stacks `xs` along channels (N, H, W already checked to agree).
pub fn concat_forward<T: Real>(xs: &[&Tensor<T>], out_shape: Shape) -> Tensor<T> {
    let [n, c_out, h, w] = [
        out_shape.dim(0),
        out_shape.dim(1),
        out_shape.dim(2),
        out_shape.dim(3),
    ];
    let plane = h * w;
    let mut y = Tensor::zeros(out_shape);
    let dst = y.data_mut();
    for b in 0..n {
        let mut c0 = 0;
        for x in xs {
            let ci = x.dims()[1];
            let block = ci * plane;
            let from = b * block;
            let to = (b * c_out + c0) * plane;
            dst[to..to + block].copy_from_slice(&x.data()[from..from + block]);
            c0 += ci;
        }
    }
    y
}

/// Splits `dy` into the inputs' channel ranges; `None` for inputs that need no gradient.
pub fn concat_backward<T: Real>(
    dy: &Tensor<T>,
    channels: &[usize],
    needs: &[bool],
) -> Vec<Option<Tensor<T>>> {
    let [n, c_out, h, w] = [dy.dims()[0], dy.dims()[1], dy.dims()[2], dy.dims()[3]];
    let plane = h * w;
    let mut c0 = 0;
    let mut grads = Vec::with_capacity(channels.len());
    for (&ci, &need) in channels.iter().zip(needs) {
        if need {
            let block = ci * plane;
            let mut dx = Tensor::zeros([n, ci, h, w]);
            let dst = dx.data_mut();
            for b in 0..n {
                let from = (b * c_out + c0) * plane;
                dst[b * block..(b + 1) * block].copy_from_slice(&dy.data()[from..from + block]);
            }
            grads.push(Some(dx));
        } else {
            grads.push(None);
        }
        c0 += ci;
    }
    grads
}
