//! CPU reference for linear. Row-major x (N, in), w (out, in), y (N, out): every inner loop
//! runs along `in`, contiguous in x, w, dx and dw. Dot products accumulate in `T`, as a
//! matrix multiply on the device does.

use shiftgrad_tensor::{Real, Tensor};

/// `y[i, o] = sum_k x[i, k] * w[o, k] + b[o]`.
pub fn forward<T: Real>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Tensor<T> {
    let mut y = Tensor::zeros([n, fout]);
    let ys = y.data_mut();
    for i in 0..n {
        let xr = &x.data()[i * fin..][..fin];
        for o in 0..fout {
            let wr = &w.data()[o * fin..][..fin];
            let dot = xr
                .iter()
                .zip(wr)
                .fold(T::zero(), |acc, (&a, &b)| acc + a * b);
            ys[i * fout + o] = dot + b.map_or(T::zero(), |b| b.data()[o]);
        }
    }
    y
}

/// `dx[i, :] = sum_o dy[i, o] * w[o, :]`.
pub fn grad_input<T: Real>(
    dy: &Tensor<T>,
    w: &Tensor<T>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Tensor<T> {
    let mut dx = Tensor::zeros([n, fin]);
    for i in 0..n {
        let dxr = &mut dx.data_mut()[i * fin..][..fin];
        for o in 0..fout {
            let g = dy.data()[i * fout + o];
            let wr = &w.data()[o * fin..][..fin];
            for (d, &wv) in dxr.iter_mut().zip(wr) {
                *d += g * wv;
            }
        }
    }
    dx
}

/// `dw[o, :] = sum_i dy[i, o] * x[i, :]`.
pub fn grad_weight<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Tensor<T> {
    let mut dw = Tensor::zeros([fout, fin]);
    for i in 0..n {
        let xr = &x.data()[i * fin..][..fin];
        for o in 0..fout {
            let g = dy.data()[i * fout + o];
            let dwr = &mut dw.data_mut()[o * fin..][..fin];
            for (d, &xv) in dwr.iter_mut().zip(xr) {
                *d += g * xv;
            }
        }
    }
    dw
}

/// `db[o] = sum_i dy[i, o]`.
pub fn grad_bias<T: Real>(dy: &Tensor<T>, n: usize, fout: usize) -> Tensor<T> {
    let mut db = Tensor::zeros([fout]);
    for i in 0..n {
        for (d, &g) in db.data_mut().iter_mut().zip(&dy.data()[i * fout..][..fout]) {
            *d += g;
        }
    }
    db
}
