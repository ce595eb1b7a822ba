//! The OpenCL backend against a real platform (PoCL on a developer machine). Each test skips,
//! with a note on stderr, when no platform is installed, unless SHIFTGRAD_REQUIRE_OPENCL=1
//! is set, in which case a missing platform fails the test.
#![cfg(feature = "opencl")]

use std::process::Command;
use std::time::Instant;

use shiftgrad_opencl::{
    list_devices, required, skip, Arg, Backend, Context, DeviceSpec, DeviceTable, Element, Error,
    KernelParams, Transfers,
};

fn context() -> Option<Context> {
    match Context::new(0, 0) {
        Ok(ctx) => Some(ctx),
        Err(Error::NoPlatform) if !required("SHIFTGRAD_REQUIRE_OPENCL") => {
            skip(
                "OpenCL device test",
                "no OpenCL platform (set SHIFTGRAD_REQUIRE_OPENCL=1 to fail instead)",
            );
            None
        }
        Err(e) => panic!("opening opencl:0:0: {e}"),
    }
}

const VADD: &str = r#"
__kernel void add(__global const real* a, __global const real* b, __global real* out,
                  const int n) {
    int i = get_global_id(0);
    if (i < n) out[i] = a[i] + b[i];
}
"#;

fn real<T: Element>() -> [(&'static str, String); 1] {
    [("real", T::CL_TYPE.to_string())]
}

#[test]
fn lists_devices_and_prints_a_table() {
    let Some(ctx) = context() else { return };
    let devices = list_devices().unwrap();
    assert!(!devices.is_empty());
    let first = &devices[0];
    assert_eq!(first, ctx.info());
    assert_eq!(
        first.spec(),
        DeviceSpec::OpenCl {
            platform: 0,
            device: 0
        }
    );
    assert!(first.compute_units > 0 && first.global_mem_bytes > 0);
    assert!(first.max_work_group_size > 0 && first.max_alloc_bytes > 0);
    assert!(
        first.opencl_version.contains('.'),
        "{}",
        first.opencl_version
    );
    let table = DeviceTable(&devices).to_string();
    eprintln!("{table}");
    assert!(table.starts_with("spec"));
    assert!(table.contains("opencl:0:0") && table.contains(&first.name));
}

#[test]
fn opencl_and_auto_specs_open_a_device() {
    let Some(_) = context() else { return };
    assert!(matches!(
        DeviceSpec::Auto.open().unwrap(),
        Backend::OpenCl(_)
    ));
    match shiftgrad_opencl::resolve(Some("opencl:0:0")).unwrap() {
        Backend::OpenCl(ctx) => assert_eq!(ctx.info().device, 0),
        Backend::Cpu => panic!("opencl:0:0 resolved to the CPU"),
    }
    let count = list_devices()
        .unwrap()
        .iter()
        .filter(|d| d.platform == 0)
        .count();
    let err = Context::new(0, count).unwrap_err().to_string();
    assert!(err.contains(&format!("has no device {count}")), "{err}");
    let err = Context::new(99, 0).unwrap_err().to_string();
    assert!(err.contains("OpenCL platform 99 does not exist"), "{err}");
}

fn vector_add<T: Element>(ctx: &Context, a: &[T], b: &[T], local: Option<[usize; 1]>) -> Vec<T> {
    let program = ctx.program("vadd", VADD, &real::<T>()).unwrap();
    let n = a.len();
    let (da, db) = (ctx.upload(a).unwrap(), ctx.upload(b).unwrap());
    let out = ctx.alloc::<T>(n).unwrap();
    let global = match local {
        Some([l]) => n.div_ceil(l) * l,
        None => n,
    };
    let args = [da.arg(), db.arg(), out.arg(), Arg::I32(n as i32)];
    ctx.launch(&program, "add", [global], local, &args).unwrap();
    out.read().unwrap()
}

#[test]
fn vector_add_f32_and_f64_from_one_source() {
    let Some(ctx) = context() else { return };
    let n = 1000;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| 3.0 - i as f32).collect();
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_eq!(vector_add(&ctx, &a, &b, None), want);
    assert_eq!(vector_add(&ctx, &a, &b, Some([64])), want);

    if !ctx.has_fp64() {
        eprintln!("skipped f64: device has no cl_khr_fp64");
        return;
    }
    // 1 + 1e-10 is 1 in f32: only a kernel computing in double gets these sums right.
    let a: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
    let b: Vec<f64> = (0..n).map(|i| 1e-10 * (i + 1) as f64).collect();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let got = vector_add(&ctx, &a, &b, None);
    assert_eq!(got, want);
    assert_ne!(got[0], 1.0);
    let p64 = ctx.program("vadd", VADD, &real::<f64>()).unwrap();
    assert_eq!(p64.options(), "-D real=double");
    assert_eq!(ctx.compilations(), 2);
}

#[test]
fn program_cache_compiles_each_key_once() {
    let Some(ctx) = context() else { return };
    let defines = |k: &str| [("real", "float".to_string()), ("K", k.to_string())];
    let first = ctx.program("vadd", VADD, &defines("3")).unwrap();
    assert_eq!(ctx.compilations(), 1);
    let again = ctx.program("vadd", VADD, &defines("3")).unwrap();
    assert!(first.ptr_eq(&again));
    // Order of the defines does not matter; they are sorted into the build options.
    let [d0, d1] = defines("3");
    let reordered = ctx.program("vadd", VADD, &[d1, d0]).unwrap();
    assert!(first.ptr_eq(&reordered));
    assert_eq!(first.options(), "-D K=3 -D real=float");
    assert_eq!(ctx.compilations(), 1);
    // Another define value is another program.
    let other = ctx.program("vadd", VADD, &defines("5")).unwrap();
    assert!(!first.ptr_eq(&other));
    assert_eq!(ctx.compilations(), 2);
    // The same key with another source is a caller bug, reported rather than served stale.
    let changed = VADD.replace("a[i] + b[i]", "a[i] - b[i]");
    let err = ctx
        .program("vadd", &changed, &defines("3"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already built from a different source"),
        "{err}"
    );
    // Malformed defines are rejected before reaching the compiler.
    let err = ctx
        .program("vadd", VADD, &[("real", "unsigned int".into())])
        .unwrap_err();
    assert!(err.to_string().contains("contains blanks"), "{err}");
    let err = ctx
        .program("vadd", VADD, &[("1x", "2".into())])
        .unwrap_err();
    assert!(err.to_string().contains("not an identifier"), "{err}");
    let err = ctx
        .program("vadd", VADD, &[("K", "1".into()), ("K", "2".into())])
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    assert_eq!(ctx.compilations(), 2);
}

#[test]
fn build_failure_carries_the_build_log() {
    let Some(ctx) = context() else { return };
    let source = "__kernel void broken(__global float* x) {\n    x[0] = ;\n}\n";
    let err = ctx.program("broken", source, &[]).unwrap_err();
    let Error::Build {
        ref program,
        ref log,
        ..
    } = err
    else {
        panic!("expected a build error, got {err}")
    };
    assert_eq!(program, "broken");
    assert!(log.contains("expected expression"), "log: {log}");
    let msg = err.to_string();
    assert!(msg.starts_with("building OpenCL program 'broken'"), "{msg}");
    assert!(msg.contains(log.as_str()));
    assert_eq!(ctx.compilations(), 0);
    // With the fp64 prelude, line numbers still refer to the source as written.
    if ctx.has_fp64() {
        let err = ctx
            .program("broken", source, &[("real", "double".into())])
            .unwrap_err();
        let Error::Build { log, .. } = err else {
            panic!("expected a build error")
        };
        assert!(log.contains(":2:"), "log: {log}");
    }
}

#[test]
fn blocking_transfers_are_counted() {
    let Some(ctx) = context() else { return };
    ctx.reset_kernel_times();
    let a = ctx.upload(&[1.0f32, 2.0, 3.0]).unwrap();
    let _ = ctx.upload::<f32>(&[]).unwrap(); // no copy, not counted
    assert_eq!(a.read().unwrap(), [1.0, 2.0, 3.0]);
    let mut back = [0.0f32; 3];
    a.read_into(&mut back).unwrap();
    let t = ctx.transfers();
    assert_eq!(
        (t.reads, t.read_bytes, t.writes, t.write_bytes),
        (2, 24, 1, 12)
    );
    ctx.reset_kernel_times();
    assert_eq!(ctx.transfers(), Transfers::default());
}

#[test]
fn pool_reuses_freed_buffers_and_counts_bytes() {
    let Some(ctx) = context() else { return };
    let a = ctx.alloc::<f32>(256).unwrap();
    let mem = a.as_core().as_ptr();
    let s = ctx.pool_stats();
    assert_eq!(
        (s.live_bytes, s.peak_bytes, s.cached_bytes),
        (1024, 1024, 0)
    );
    assert_eq!((s.fresh_allocations, s.reuses), (1, 0));
    drop(a);
    let s = ctx.pool_stats();
    assert_eq!(
        (s.live_bytes, s.peak_bytes, s.cached_bytes),
        (0, 1024, 1024)
    );
    // Same byte size, other element type: the freed memory comes back.
    let b = ctx.alloc::<f64>(128).unwrap();
    assert_eq!(b.as_core().as_ptr(), mem);
    let s = ctx.pool_stats();
    assert_eq!((s.fresh_allocations, s.reuses, s.cached_bytes), (1, 1, 0));
    let c = ctx.alloc::<i32>(10).unwrap();
    let s = ctx.pool_stats();
    assert_eq!(
        (s.live_bytes, s.peak_bytes, s.fresh_allocations),
        (1064, 1064, 2)
    );
    drop(b);
    ctx.reset_peak();
    assert_eq!(ctx.pool_stats().peak_bytes, 40);
    ctx.release_cached();
    let s = ctx.pool_stats();
    assert_eq!((s.live_bytes, s.cached_bytes), (40, 0));
    drop(c);
    let d = ctx.alloc::<f32>(256).unwrap();
    assert_eq!(
        ctx.pool_stats().fresh_allocations,
        3,
        "released memory is not reused"
    );
    drop(d);
}

#[test]
fn buffers_copy_fill_and_check_lengths() {
    let Some(ctx) = context() else { return };
    let a = ctx.upload(&[1i32, 2, 3, 4]).unwrap();
    assert_eq!(a.read().unwrap(), [1, 2, 3, 4]);
    let b = ctx.alloc::<i32>(4).unwrap();
    b.copy_from(&a).unwrap();
    a.fill(7).unwrap();
    let mut host = [0i32; 4];
    b.read_into(&mut host).unwrap();
    assert_eq!(host, [1, 2, 3, 4]);
    assert_eq!(a.read().unwrap(), [7; 4]);
    let err = a.write(&[1, 2, 3]).unwrap_err().to_string();
    assert_eq!(
        err,
        "OpenCL: write: buffer holds 4 int elements, host slice has 3"
    );
    let err = a.read_into(&mut [0; 5]).unwrap_err().to_string();
    assert!(
        err.contains("read: buffer holds 4 int elements, host slice has 5"),
        "{err}"
    );
    let short = ctx.alloc::<i32>(3).unwrap();
    assert!(short.copy_from(&a).is_err());
    let empty = ctx.upload::<f32>(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.read().unwrap(), Vec::<f32>::new());
    assert_eq!(
        empty.bytes(),
        4,
        "a zero-length buffer still holds one element"
    );
}

#[test]
fn profiling_times_launches() {
    let Some(ctx) = context() else { return };
    assert!(ctx.profiling());
    let n = 1 << 16;
    let a = vec![1.0f32; n];
    let b = vec![2.0f32; n];
    assert_eq!(vector_add(&ctx, &a, &b, None), vec![3.0f32; n]);
    let times = ctx.kernel_times().unwrap();
    assert_eq!(times.len(), 1);
    let t = &times[0];
    assert_eq!((t.program.as_str(), t.kernel.as_str()), ("vadd", "add"));
    assert_eq!((t.launches, t.timed_launches), (1, 1));
    assert!(t.device_ns > 0, "{t:?}");
    ctx.set_profiling(false);
    vector_add(&ctx, &a, &b, None);
    ctx.finish().unwrap();
    let t = &ctx.kernel_times().unwrap()[0];
    assert_eq!((t.launches, t.timed_launches), (2, 1));
    ctx.reset_kernel_times();
    assert!(ctx.kernel_times().unwrap().is_empty());
}

#[test]
fn regions_sum_the_launches_made_under_them() {
    let Some(ctx) = context() else { return };
    let n = 1 << 12;
    let (a, b) = (vec![1.0f32; n], vec![2.0f32; n]);
    vector_add(&ctx, &a, &b, None); // outside every region
    {
        let _r = shiftgrad_opencl::region::enter("first");
        vector_add(&ctx, &a, &b, None);
        vector_add(&ctx, &a, &b, None);
        let _s = shiftgrad_opencl::region::enter("second");
        vector_add(&ctx, &a, &b, None);
    }
    let regions = ctx.region_times().unwrap();
    let by = |name: &str| regions.iter().find(|r| r.region == name).cloned();
    let (first, second, rest) = (by("first").unwrap(), by("second").unwrap(), by("").unwrap());
    assert_eq!(
        (first.launches, second.launches, rest.launches),
        (2, 1, 1),
        "{regions:?}"
    );
    assert_eq!(first.timed_launches, 2);
    assert!(first.device_ns > 0 && second.device_ns > 0 && rest.device_ns > 0);
    let kernel_ns: u64 = ctx
        .kernel_times()
        .unwrap()
        .iter()
        .map(|t| t.device_ns)
        .sum();
    let region_ns: u64 = regions.iter().map(|r| r.device_ns).sum();
    assert_eq!(
        kernel_ns, region_ns,
        "regions split the kernels' time, no more, no less"
    );
    ctx.reset_kernel_times();
    assert!(ctx.region_times().unwrap().is_empty());
}

/// Mirrors `Affine` in PARAMS_SRC; three 4-byte fields, no padding.
#[repr(C)]
#[derive(Clone, Copy)]
struct Affine {
    scale: f32,
    shift: f32,
    n: i32,
}

// SAFETY: repr(C), no padding, no pointers, mirrored field for field below.
unsafe impl KernelParams for Affine {}

const PARAMS_SRC: &str = r#"
typedef struct { float scale; float shift; int n; } Affine;

__kernel void affine(__global float* x, const Affine p) {
    int i = get_global_id(0);
    if (i < p.n) x[i] = p.scale * x[i] + p.shift;
}

__kernel void group_sum(__global const float* x, __global float* sums, __local float* scratch) {
    int l = get_local_id(0);
    scratch[l] = x[get_global_id(0)];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s /= 2) {
        if (l < s) scratch[l] += scratch[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) sums[get_group_id(0)] = scratch[0];
}
"#;

#[test]
fn params_struct_local_scratch_and_launch_checks() {
    let Some(ctx) = context() else { return };
    let program = ctx.program("params", PARAMS_SRC, &[]).unwrap();
    let x = ctx
        .upload(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        .unwrap();
    let p = Affine {
        scale: 2.0,
        shift: 1.0,
        n: 6,
    };
    ctx.launch(&program, "affine", [8], None, &[x.arg(), Arg::params(&p)])
        .unwrap();
    assert_eq!(
        x.read().unwrap(),
        [3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 7.0, 8.0]
    );

    let sums = ctx.alloc::<f32>(2).unwrap();
    let args = [x.arg(), sums.arg(), Arg::Local { bytes: 4 * 4 }];
    ctx.launch(&program, "group_sum", [8], Some([4]), &args)
        .unwrap();
    assert_eq!(sums.read().unwrap(), [24.0, 39.0]);

    let err = ctx
        .launch(&program, "affine", [8], None, &[x.arg()])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "OpenCL: launch of params::affine: the kernel takes 2 arguments, 1 given"
    );
    let err = ctx
        .launch(&program, "group_sum", [8], Some([3]), &args)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("local size [3] does not divide global size [8]"),
        "{err}"
    );
    let err = ctx.launch(&program, "nope", [8], None, &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("creating kernel 'nope' of program 'params'"),
        "{err}"
    );
    let zero = [x.arg(), sums.arg(), Arg::Local { bytes: 0 }];
    assert!(ctx
        .launch(&program, "group_sum", [8], Some([4]), &zero)
        .is_err());
    // An empty range enqueues nothing and counts no launch.
    ctx.launch(&program, "affine", [0], None, &[x.arg(), Arg::params(&p)])
        .unwrap();
    let launches: u64 = ctx.kernel_times().unwrap().iter().map(|t| t.launches).sum();
    assert_eq!(launches, 2);
    // Programs and buffers stay with their context.
    let other = Context::new(0, 0).unwrap();
    let foreign = other.alloc::<f32>(8).unwrap();
    let err = ctx.launch(
        &program,
        "affine",
        [8],
        None,
        &[foreign.arg(), Arg::params(&p)],
    );
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("buffer of another context"));
    let err = other.launch(
        &program,
        "affine",
        [8],
        None,
        &[foreign.arg(), Arg::params(&p)],
    );
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("built for another context"));
}

/// Runs `child_without_platform` in a fresh process whose ICD loader sees no vendor (ocl-icd
/// honours OCL_ICD_VENDORS), to check the no-platform path on a machine that has one.
#[test]
fn no_platform_error_says_how_to_install_one() {
    if std::env::var_os("SHIFTGRAD_TEST_CHILD").is_some() {
        return child_without_platform();
    }
    let empty = std::env::temp_dir().join(format!("shiftgrad-no-icd-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_platform_error_says_how_to_install_one",
            "--nocapture",
        ])
        .env("SHIFTGRAD_TEST_CHILD", "1")
        .env("OCL_ICD_VENDORS", &empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    if text.contains("LOADER_IGNORES_OCL_ICD_VENDORS") {
        eprintln!("skipped: this ICD loader ignores OCL_ICD_VENDORS");
    } else {
        assert!(
            text.contains("CHILD_CHECKED_NO_PLATFORM"),
            "child output:\n{text}"
        );
    }
}

fn child_without_platform() {
    let start = Instant::now();
    let err = match Context::new(0, 0) {
        Ok(_) => {
            println!("LOADER_IGNORES_OCL_ICD_VENDORS");
            return;
        }
        Err(e) => e,
    };
    assert!(matches!(err, Error::NoPlatform), "{err}");
    assert_eq!(
        err.to_string(),
        "no OpenCL platform found; on Debian/Ubuntu: apt-get install pocl-opencl-icd ocl-icd-opencl-dev"
    );
    assert!(matches!(list_devices(), Err(Error::NoPlatform)));
    assert!(matches!(DeviceSpec::Auto.open().unwrap(), Backend::Cpu));
    // ocl's own platform query retries for 10 s here; ours must answer at once.
    assert!(start.elapsed().as_secs() < 3, "took {:?}", start.elapsed());
    println!("CHILD_CHECKED_NO_PLATFORM");
}
