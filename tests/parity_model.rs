//! A whole SW-ResNet (and its baselines), forward and backward on OpenCL, against the CPU
//! reference: the loss, the logits and every parameter's gradient agree within f32 tolerance,
//! and batch-norm running statistics after the step agree too. Skipped where no OpenCL device
//! exists (required in CI).

use shiftgrad::autograd::Var;
use shiftgrad::nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad::nn::{Mode, Module, SpatialKind};
use shiftgrad::ops::cross_entropy;
use shiftgrad::ops::parity::opencl_device;
use shiftgrad::tensor::{init, Device, Tensor};

fn rel(a: &Tensor<f32>, b: &Tensor<f32>) -> f64 {
    a.to_host()
        .unwrap()
        .max_abs_diff(&b.to_host().unwrap())
        .unwrap()
        / b.max_abs().max(1e-12)
}

fn step(
    model: &mut SwResNet<f32>,
    x: &Tensor<f32>,
    labels: &[usize],
    device: &Device,
) -> (f32, Tensor<f32>) {
    let logits = model
        .forward(&Var::constant(x.to_device(device).unwrap()), Mode::Train)
        .unwrap();
    let loss = cross_entropy(&logits, labels).unwrap();
    loss.backward().unwrap();
    let l = loss.value().item().unwrap();
    let host = logits.value().to_host().unwrap();
    (l, host)
}

#[test]
fn sw_resnet_step_on_opencl_equals_cpu() {
    let Some(dev) = opencl_device() else { return };
    for kind in [
        SpatialKind::Sw,
        SpatialKind::Slak,
        SpatialKind::Dense,
        SpatialKind::Small,
    ] {
        let mut config = ResNetConfig::preset("sw-resnet-tiny").unwrap();
        config.widths = vec![16, 24];
        config.depths = vec![1, 1];
        config.big_kernels = vec![13, 7];
        config.spatial = kind;
        config.seed = 5;
        let mut cpu = SwResNet::<f32>::new(config.clone()).unwrap();
        let mut gpu = SwResNet::<f32>::new(config).unwrap();
        gpu.move_to(&dev).unwrap();
        let x: Tensor<f32> = init::normal([6, 1, 20, 20], 0.0, 1.0, &mut init::rng(3));
        let labels = [0, 3, 9, 1, 1, 4];
        let (l_cpu, y_cpu) = step(&mut cpu, &x, &labels, &Device::Cpu);
        let (l_dev, y_dev) = step(&mut gpu, &x, &labels, &dev);
        assert!(
            ((l_cpu - l_dev) / l_cpu).abs() < 1e-5,
            "{kind}: loss {l_cpu} vs {l_dev}"
        );
        assert!(
            rel(&y_dev, &y_cpu) < 1e-4,
            "{kind}: logits differ by {}",
            rel(&y_dev, &y_cpu)
        );
        let (pc, pd) = (cpu.named_parameters(), gpu.named_parameters());
        assert_eq!(pc.len(), pd.len());
        for (a, b) in pc.iter().zip(&pd) {
            let (ga, gb) = (a.var.grad().clone().unwrap(), b.var.grad().clone().unwrap());
            let d = rel(&gb, &ga);
            assert!(d < 1e-4, "{kind}: gradient of {} differs by {d:e}", a.name);
        }
        let (sc, sd) = (cpu.state_dict().unwrap(), gpu.state_dict().unwrap());
        for name in sc
            .names()
            .filter(|n| n.ends_with("running_var") || n.ends_with("running_mean"))
        {
            let d = rel(sd.tensor(name).unwrap(), sc.tensor(name).unwrap());
            assert!(d < 1e-4, "{kind}: {name} differs by {d:e}");
        }
    }
}
