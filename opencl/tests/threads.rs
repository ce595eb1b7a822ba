//! Opening devices from several threads at once, as parallel tests do. This file is its own
//! process, so the threads below are the first to touch OpenCL: without the crate's
//! enumeration lock, PoCL 3.1 answered some of them with zero devices or crashed in
//! clGetDeviceInfo while another thread was still initialising it.
#![cfg(feature = "opencl")]

use shiftgrad_opencl::{list_devices, required, skip, Context, Error};

#[test]
fn cold_parallel_enumeration_is_safe() {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || -> Result<usize, Error> {
                if i % 2 == 0 {
                    Ok(list_devices()?.len())
                } else {
                    Context::new(0, 0).map(|ctx| usize::from(!ctx.info().name.is_empty()))
                }
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    if results.iter().all(|r| matches!(r, Err(Error::NoPlatform)))
        && !required("SHIFTGRAD_REQUIRE_OPENCL")
    {
        skip("cold parallel enumeration", "no OpenCL platform");
        return;
    }
    for r in results {
        assert!(r.unwrap() >= 1);
    }
}
