//! The program cache: each (name, defines) pair is compiled once per context.
//!
//! Specialisation is by preprocessor defines (`-D real=double`, `-D K=3`), so one `.cl`
//! source serves f32 and f64 and every compile-time size. The defines are sorted by name before
//! they become build options, so the order a caller lists them in does not cause a second
//! compilation. When a define's value is `double`, the source is prefixed with the
//! `cl_khr_fp64` pragma and a `#line 1`, so f64 kernels need no boilerplate and compiler
//! messages keep the line numbers of the file as written.
//!
//! Rejected: caching program binaries on disk. PoCL and the GPU drivers already keep their
//! own kernel caches, and a stale binary is a failure mode nobody should have to debug.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;

use ocl::core::{self, ProgramBuildInfo, ProgramBuildInfoResult};

use super::context::Context;
use crate::{Error, KernelTime, Result};

/// Prepended to programs built with a `double` define.
const FP64_PRELUDE: &str = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n#line 1\n";

/// A compiled program. Cloning is cheap; clones are the same program.
#[derive(Clone)]
pub struct Program {
    pub(super) inner: Rc<ProgramInner>,
}

pub(super) struct ProgramInner {
    pub(super) context_id: u64,
    pub(super) name: String,
    pub(super) options: String,
    pub(super) source: String,
    pub(super) program: core::Program,
    pub(super) kernels: RefCell<HashMap<String, Rc<Kernel>>>,
}

/// A kernel object of a program, created on first launch and reused.
pub(super) struct Kernel {
    pub(super) kernel: core::Kernel,
    pub(super) num_args: u32,
    /// Index of this kernel's [`KernelTime`] in the context's profiler.
    pub(super) stat: usize,
}

impl Program {
    /// The name given to [`Context::program`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The build options the defines became, e.g. "-D K=3 -D real=double".
    pub fn options(&self) -> &str {
        &self.inner.options
    }

    /// Whether two handles are the same compiled program.
    pub fn ptr_eq(&self, other: &Program) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// The kernel `name` of this program, created and counted on first use.
    pub(super) fn kernel(&self, ctx: &Context, name: &str) -> Result<Rc<Kernel>> {
        if self.inner.context_id != ctx.inner.id {
            return Err(Error::Invalid(format!(
                "program '{}' was built for another context",
                self.inner.name
            )));
        }
        if let Some(k) = self.inner.kernels.borrow().get(name) {
            return Ok(k.clone());
        }
        let what = || format!("creating kernel '{name}' of program '{}'", self.inner.name);
        let kernel =
            core::create_kernel(&self.inner.program, name).map_err(|e| Error::api(what(), e))?;
        let num_args = match core::get_kernel_info(&kernel, core::KernelInfo::NumArgs) {
            Ok(core::KernelInfoResult::NumArgs(n)) => n,
            Ok(other) => return Err(Error::Invalid(format!("{}: odd answer {other:?}", what()))),
            Err(e) => return Err(Error::api(what(), e)),
        };
        let stat = {
            let mut profiler = ctx.inner.profiler.borrow_mut();
            profiler.stats.push(KernelTime {
                program: self.inner.name.clone(),
                kernel: name.to_string(),
                ..KernelTime::default()
            });
            profiler.stats.len() - 1
        };
        let k = Rc::new(Kernel {
            kernel,
            num_args,
            stat,
        });
        self.inner
            .kernels
            .borrow_mut()
            .insert(name.to_string(), k.clone());
        Ok(k)
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Program({:?}, {:?})",
            self.inner.name, self.inner.options
        )
    }
}

/// Checks the defines and renders them, sorted by name, as build options.
fn build_options(program: &str, defines: &[(&str, String)]) -> Result<String> {
    let bad = |msg: String| Error::Invalid(format!("program '{program}': {msg}"));
    let mut sorted: Vec<&(&str, String)> = defines.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut parts = Vec::with_capacity(sorted.len());
    for (i, (name, value)) in sorted.iter().enumerate() {
        let ident = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(bad(format!("define name {name:?} is not an identifier")));
        }
        if i > 0 && sorted[i - 1].0 == *name {
            return Err(bad(format!("define {name:?} is given twice")));
        }
        if value.is_empty() {
            parts.push(format!("-D {name}"));
        } else if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
        {
            return Err(bad(format!(
                "define {name}={value:?} contains blanks, control characters or quotes"
            )));
        } else {
            parts.push(format!("-D {name}={value}"));
        }
    }
    Ok(parts.join(" "))
}

impl Context {
    /// The program `name` compiled from `source` with `defines` (`("real", "double".into())`
    /// becomes `-D real=double`). Compiled on the first call for each (name, defines) pair and
    /// cached for the life of the context; later calls return the same [`Program`]. A define
    /// valued `double` enables cl_khr_fp64 (an error on devices without it). A compiler error
    /// returns [`Error::Build`] with the build log.
    pub fn program(&self, name: &str, source: &str, defines: &[(&str, String)]) -> Result<Program> {
        let options = build_options(name, defines)?;
        let key = (name.to_string(), options);
        if let Some(p) = self.inner.programs.borrow().get(&key) {
            if p.inner.source != source {
                return Err(Error::Invalid(format!(
                    "program '{name}' was already built from a different source; give each source its own name"
                )));
            }
            return Ok(p.clone());
        }
        let (name, options) = key;
        let fp64 = defines.iter().any(|(_, v)| v == "double");
        if fp64 && !self.has_fp64() {
            return Err(Error::NoFp64 {
                program: name,
                device: self.inner.info.name.clone(),
            });
        }
        let full = if fp64 {
            format!("{FP64_PRELUDE}{source}")
        } else {
            source.to_string()
        };
        let c_source = CString::new(full)
            .map_err(|_| Error::Invalid(format!("program '{name}': source contains a NUL byte")))?;
        let c_options = CString::new(options.clone())
            .map_err(|_| Error::Invalid(format!("program '{name}': options contain a NUL byte")))?;
        let program = core::create_program_with_source(&self.inner.context, &[c_source])
            .map_err(|e| Error::api(format!("creating program '{name}'"), e))?;
        let device = self.inner.device;
        if let Err(e) = core::build_program(&program, Some(&[device]), &c_options, None, None) {
            let log =
                match core::get_program_build_info(&program, device, ProgramBuildInfo::BuildLog) {
                    Ok(ProgramBuildInfoResult::BuildLog(log)) if !log.trim().is_empty() => {
                        log.trim_end().to_string()
                    }
                    _ => e.to_string(),
                };
            return Err(Error::Build {
                program: name,
                options,
                log,
            });
        }
        self.inner
            .compilations
            .set(self.inner.compilations.get() + 1);
        let compiled = Program {
            inner: Rc::new(ProgramInner {
                context_id: self.inner.id,
                name: name.clone(),
                options: options.clone(),
                source: source.to_string(),
                program,
                kernels: RefCell::new(HashMap::new()),
            }),
        };
        self.inner
            .programs
            .borrow_mut()
            .insert((name, options), compiled.clone());
        Ok(compiled)
    }

    /// How many programs this context has compiled (cache misses of [`Context::program`]).
    pub fn compilations(&self) -> usize {
        self.inner.compilations.get()
    }
}
