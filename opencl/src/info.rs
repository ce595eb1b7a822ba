//! What the device layer reports about an OpenCL device, and the table `shiftgrad devices`
//! prints. Plain data, available with or without the `opencl` feature.

use std::fmt;

use crate::DeviceSpec;

/// One OpenCL device, as enumerated by [`crate::list_devices`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index of the platform in the ICD loader's list (the `P` of `opencl:P:D`).
    pub platform: usize,
    /// The platform's name, e.g. "Portable Computing Language".
    pub platform_name: String,
    /// Index of the device within its platform (the `D` of `opencl:P:D`).
    pub device: usize,
    /// The device's name.
    pub name: String,
    /// CL_DEVICE_MAX_COMPUTE_UNITS.
    pub compute_units: u32,
    /// CL_DEVICE_GLOBAL_MEM_SIZE, in bytes.
    pub global_mem_bytes: u64,
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE, in bytes: the largest single buffer.
    pub max_alloc_bytes: u64,
    /// CL_DEVICE_MAX_WORK_GROUP_SIZE.
    pub max_work_group_size: usize,
    /// CL_DEVICE_LOCAL_MEM_SIZE, in bytes: the `__local` memory of one work-group.
    pub local_mem_bytes: u64,
    /// Whether CL_DEVICE_EXTENSIONS lists `cl_khr_fp64` (double precision kernels).
    pub fp64: bool,
    /// The OpenCL version the device reports, "MAJOR.MINOR".
    pub opencl_version: String,
    /// Whether CL_DEVICE_TYPE includes CL_DEVICE_TYPE_GPU: the kernels that have a GPU-shaped
    /// variant use it (`shiftgrad_ops::device::gpu_shaped`).
    pub gpu: bool,
}

impl DeviceInfo {
    /// The spec that selects this device.
    pub fn spec(&self) -> DeviceSpec {
        DeviceSpec::OpenCl {
            platform: self.platform,
            device: self.device,
        }
    }
}

impl fmt::Display for DeviceInfo {
    /// One line: spec, names, and the numbers that matter for choosing a device.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} / {} ({} CUs, {} global, max work-group {}, fp64 {}, OpenCL {})",
            self.spec(),
            self.platform_name,
            self.name,
            self.compute_units,
            human_bytes(self.global_mem_bytes),
            self.max_work_group_size,
            if self.fp64 { "yes" } else { "no" },
            self.opencl_version
        )
    }
}

/// A printable table of devices: `println!("{}", DeviceTable(&list_devices()?))`.
pub struct DeviceTable<'a>(pub &'a [DeviceInfo]);

impl fmt::Display for DeviceTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADER: [&str; 8] = [
            "spec",
            "platform",
            "device",
            "CUs",
            "global mem",
            "max WG",
            "fp64",
            "OpenCL",
        ];
        if self.0.is_empty() {
            return writeln!(f, "no OpenCL devices");
        }
        let rows: Vec<[String; 8]> = self
            .0
            .iter()
            .map(|d| {
                [
                    d.spec().to_string(),
                    d.platform_name.clone(),
                    d.name.clone(),
                    d.compute_units.to_string(),
                    human_bytes(d.global_mem_bytes),
                    d.max_work_group_size.to_string(),
                    if d.fp64 { "yes" } else { "no" }.to_string(),
                    d.opencl_version.clone(),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(&format!("{cell:<w$}"));
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &HEADER)?;
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(f, &cells)?;
        }
        Ok(())
    }
}

/// Bytes in binary units with one decimal ("15.6 GiB").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
