//! Criterion benchmarks: the hot ops at SW-ResNet sizes, one spatial layer of each kind, and
//! one training step, on the CPU and (with `--features opencl` and a device) on OpenCL.
//!
//!     cargo bench --bench spatial                       # CPU
//!     cargo bench --features opencl --bench spatial     # CPU and OpenCL
//!
//! Report medians and ratios: this machine is shared and noisy.

use criterion::{criterion_group, criterion_main, Criterion};
use shiftgrad::autograd::{no_grad, Var};
use shiftgrad::nn::baselines::{Spatial, SpatialKind};
use shiftgrad::nn::optim::{OptimKind, Optimizer};
use shiftgrad::nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad::nn::{Mode, Module, SwConfig};
use shiftgrad::ops::shift_add::{shift_add, ShiftTables};
use shiftgrad::ops::{conv2d, cross_entropy, sum, Conv2dParams};
use shiftgrad::tensor::{init, Device, Tensor};
use std::rc::Rc;

fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if let Ok(dev) = Device::open(Some("opencl")) {
        d.push(dev);
    }
    d
}

fn sync(t: &Tensor<f32>) {
    // Reading one value waits for the device queue.
    let _ = t.to_vec();
}

fn ops(c: &mut Criterion) {
    let mut rng = init::rng(0);
    for dev in devices() {
        let name = if dev.is_cpu() { "cpu" } else { "opencl" };
        let x = Var::param(
            init::normal::<f32>([32, 32, 28, 28], 0.0, 1.0, &mut rng)
                .to_device(&dev)
                .unwrap(),
        );
        let w1 = Var::param(
            init::normal::<f32>([32, 32, 1, 1], 0.0, 0.1, &mut rng)
                .to_device(&dev)
                .unwrap(),
        );
        c.bench_function(&format!("{name}/conv1x1 32->32 28x28 b32 fwd+bwd"), |b| {
            b.iter(|| {
                let y = conv2d(&x, &w1, None, Conv2dParams::new()).unwrap();
                sum(&y).unwrap().backward().unwrap();
                sync(&x.grad().clone().unwrap());
            })
        });
        let tables = Rc::new(ShiftTables::random(13, 3, 24, 4, &mut rng).unwrap());
        let wb = Var::param(
            init::normal::<f32>([24 * 5, 1, 3, 3], 0.0, 0.3, &mut rng)
                .to_device(&dev)
                .unwrap(),
        );
        let xr = Var::param(
            init::normal::<f32>([32, 24, 28, 28], 0.0, 1.0, &mut rng)
                .to_device(&dev)
                .unwrap(),
        );
        c.bench_function(
            &format!("{name}/bank conv + shift_add M13 k3 R24 G4 b32 fwd+bwd"),
            |b| {
                b.iter(|| {
                    let y =
                        conv2d(&xr, &wb, None, Conv2dParams::new().pad(2, 2).groups(24)).unwrap();
                    let (h, v, i) = shift_add(&y, &tables).unwrap();
                    let s = shiftgrad::ops::add_n(&[&h, &v, &i]).unwrap();
                    sum(&s).unwrap().backward().unwrap();
                    sync(&xr.grad().clone().unwrap());
                })
            },
        );
    }
}

fn layers(c: &mut Criterion) {
    for dev in devices() {
        let name = if dev.is_cpu() { "cpu" } else { "opencl" };
        for kind in [
            SpatialKind::Sw,
            SpatialKind::Slak,
            SpatialKind::Dense,
            SpatialKind::Small,
        ] {
            let cfg = SwConfig::new(32, 13, 3, 1);
            let mut layer = Spatial::<f32>::new(kind, cfg).unwrap();
            layer.move_to(&dev).unwrap();
            let x = Var::constant(
                init::normal::<f32>([32, 32, 28, 28], 0.0, 1.0, &mut init::rng(2))
                    .to_device(&dev)
                    .unwrap(),
            );
            c.bench_function(
                &format!("{name}/{kind} layer C32 M13 k3 28x28 b32 eval fwd"),
                |b| b.iter(|| no_grad(|| sync(&layer.forward(&x, Mode::Eval).unwrap().value()))),
            );
        }
    }
}

fn step(c: &mut Criterion) {
    for dev in devices() {
        let name = if dev.is_cpu() { "cpu" } else { "opencl" };
        let mut model =
            SwResNet::<f32>::new(ResNetConfig::preset("sw-resnet-tiny").unwrap()).unwrap();
        model.move_to(&dev).unwrap();
        let mut opt = Optimizer::new(
            OptimKind::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4,
            },
            model.named_parameters(),
        );
        let x = init::normal::<f32>([32, 1, 28, 28], 0.0, 1.0, &mut init::rng(3))
            .to_device(&dev)
            .unwrap();
        let labels: Vec<usize> = (0..32).map(|i| i % 10).collect();
        let mut group = c.benchmark_group(format!("{name}/train step"));
        group.sample_size(10);
        group.bench_function("sw-resnet-tiny b32", |b| {
            b.iter(|| {
                let logits = model
                    .forward(&Var::constant(x.clone()), Mode::Train)
                    .unwrap();
                let loss = cross_entropy(&logits, &labels).unwrap();
                loss.backward().unwrap();
                opt.step(0.01).unwrap();
                sync(&loss.value());
            })
        });
        group.finish();
    }
}

criterion_group!(benches, ops, layers, step);
criterion_main!(benches);
