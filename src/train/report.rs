//! The end of a training job: `summary.json` (what every number in it is measured from) and
//! the closing lines printed.

use super::metrics::{self, KernelShare, Summary};
use super::run::{Run, Tally};
use super::TrainJob;
use shiftgrad_tensor::Device;
use std::time::Instant;

/// The device's twelve longest kernels (OpenCL profiling events) with their share of the
/// device time; empty on the CPU backend.
fn kernel_top(device: &Device) -> Vec<KernelShare> {
    let Device::OpenCl(ctx) = device else {
        return Vec::new();
    };
    let Ok(times) = ctx.kernel_times() else {
        return Vec::new();
    };
    let total: u64 = times.iter().map(|t| t.device_ns).sum::<u64>().max(1);
    times
        .iter()
        .take(12)
        .map(|t| KernelShare {
            kernel: format!("{}::{}", t.program, t.kernel),
            launches: t.launches,
            seconds: t.device_ns as f64 * 1e-9,
            share: t.device_ns as f64 / total as f64,
        })
        .collect()
}

/// The job's summary from the run, its tallies and the device's counters.
pub(crate) fn summarise(
    run: &Run,
    job: &TrainJob,
    params: usize,
    start: Instant,
    tally: &Tally,
) -> Summary {
    let last = run.history.last();
    Summary {
        preset: run.config.preset.clone(),
        spatial: run.config.spatial.clone(),
        device: job.device.name(),
        parameters: params,
        live_parameters: None,
        forward_flops_per_image: tally.flops_fwd,
        backward_flops_per_image: tally.flops_bwd,
        gradient_accumulation_flops_per_image: tally.flops_accumulate,
        optimiser_flops_per_step: tally.flops_optim,
        forward_macs_per_image: tally.macs_fwd,
        forward_flops_by_region: tally.flops_fwd_by_region.clone(),
        peak_device_memory_bytes: metrics::peak_bytes(&job.device),
        memory: tally.memory,
        graph_outputs_by_op: tally.graph_outputs_by_op.clone(),
        epochs: run.history.len(),
        wall_seconds: start.elapsed().as_secs_f64(),
        train_images_per_s: if tally.train_seconds > 0.0 {
            tally.trained_images as f64 / tally.train_seconds
        } else {
            0.0
        },
        finite_check_seconds: tally.finite_check_seconds,
        final_test_accuracy: last.map_or(0.0, |m| m.test_acc),
        final_test_loss: last.map_or(0.0, |m| m.test_loss),
        kernel_time_top: kernel_top(&job.device),
        densities: Vec::new(),
        stage_densities: Vec::new(),
        distributed: None,
    }
}
