//! The processes of a data-parallel training job (`mpirun -np N shiftgrad train
//! --distributed`) and the few collectives the trainer needs, over MPI (the `mpi` cargo
//! feature, rsmpi over Open MPI). Without the feature, or without `--distributed`, a job is
//! one process ([`Group::single`]) and every collective is the identity.
//!
//! ## Deterministic sums
//! [`Group::sum`] is an all-gather followed by a sum in rank order, in f64, on every process:
//! the result does not depend on the MPI library's reduction algorithm or on timing, and every
//! process gets it bit for bit. It moves N times the data of a reduce-scatter based
//! all-reduce, which is what a few processes on one machine can afford; the time spent in the
//! collectives is kept ([`Group::comm_seconds`]) and reported.
//!
//! ## Failures
//! A process that fails while the others wait in a collective would leave them waiting
//! forever. The setup (device, data, model) ends with [`Group::agree`], which tells every
//! process which ranks failed and why, so that all stop with the same message; an error after
//! that aborts the whole job ([`Group::abort`]), and since checkpoints are written to a
//! temporary file and renamed, none is left half-written.

use shiftgrad_ops::batch_norm::StatsSync;
use shiftgrad_tensor::{Error, Result};
use std::cell::Cell;

/// The processes of one job.
pub struct Group {
    rank: usize,
    size: usize,
    local_rank: usize,
    comm_ns: Cell<u64>,
    /// Set when [`Group::agree`] returned an error: every process has it.
    agreed_failure: Cell<bool>,
    #[cfg(feature = "mpi")]
    mpi: Option<Mpi>,
}

#[cfg(feature = "mpi")]
struct Mpi {
    world: mpi::topology::SimpleCommunicator,
    // Finalises MPI when dropped, so it goes last.
    _universe: mpi::environment::Universe,
}

/// The longest error message a rank can pass to the others in [`Group::agree`] (bytes).
const MESSAGE_BYTES: usize = 1024;

impl Group {
    /// A job of one process.
    pub fn single() -> Group {
        Group {
            rank: 0,
            size: 1,
            local_rank: 0,
            comm_ns: Cell::new(0),
            agreed_failure: Cell::new(false),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// Joins the MPI job this process was started in (by `mpirun`); a process started alone
    /// is a job of one. Errors when this build has no MPI (the `mpi` feature).
    pub fn mpi() -> Result<Group> {
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::Communicator;
            let universe = mpi::initialize()
                .ok_or_else(|| Error::Other("distributed: MPI could not be initialised".into()))?;
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            if size > 1 {
                // A panicking process would unwind into MPI_Finalize and wait there for the
                // others, which wait for it in a collective: it exits at once instead, and
                // mpirun stops the job at the first failed process.
                let report = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    report(info);
                    eprintln!("error: rank {rank} of {size} panicked; stopping the job");
                    std::process::abort();
                }));
            }
            Ok(Group {
                rank,
                size,
                local_rank: local_rank().unwrap_or(rank),
                comm_ns: Cell::new(0),
                agreed_failure: Cell::new(false),
                mpi: Some(Mpi {
                    world,
                    _universe: universe,
                }),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err(Error::arg(
            "train",
            "--distributed needs a build with MPI: install Open MPI (apt-get install -y libopenmpi-dev openmpi-bin clang) and build with --features mpi (./run does when MPI is installed)",
        ))
    }

    /// This process's rank, 0 ..= size - 1.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The rank among the processes on this machine (Open MPI's
    /// `OMPI_COMM_WORLD_LOCAL_RANK`, or MPICH's or Slurm's equivalent; else the rank): it
    /// picks the OpenCL device.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Whether this process prints, and writes the run directory.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Seconds spent in collectives so far.
    pub fn comm_seconds(&self) -> f64 {
        self.comm_ns.get() as f64 * 1e-9
    }

    #[cfg(feature = "mpi")]
    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let t = std::time::Instant::now();
        let r = f();
        let ns = t.elapsed().as_nanos() as u64;
        self.comm_ns.set(self.comm_ns.get() + ns);
        r
    }

    /// Replaces `v` by its element-wise sum over the processes, added in rank order in f64
    /// (the same bits on every process). Every process must call it with the same length.
    pub fn sum(&self, v: &mut [f64]) -> Result<()> {
        if self.size == 1 || v.is_empty() {
            return Ok(());
        }
        let all = self.all_gather(v)?;
        let n = v.len();
        for (i, out) in v.iter_mut().enumerate() {
            let mut s = 0.0f64;
            for r in 0..self.size {
                s += all[r * n + i];
            }
            *out = s;
        }
        Ok(())
    }

    /// Every process's `v` (of the same length on every process), in rank order.
    pub fn all_gather(&self, v: &[f64]) -> Result<Vec<f64>> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::CommunicatorCollectives;
            let mut all = vec![0.0f64; v.len() * self.size];
            self.timed(|| m.world.all_gather_into(v, &mut all[..]));
            return Ok(all);
        }
        Ok(v.to_vec())
    }

    /// Rank 0's `v`, on every process.
    pub fn broadcast(&self, v: &mut [f64]) -> Result<()> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::{Communicator, Root};
            self.timed(|| m.world.process_at_rank(0).broadcast_into(v));
        }
        let _ = v;
        Ok(())
    }

    /// Every process's outcome of the same step: `Ok` on every process when all succeeded,
    /// else the same error on every process, naming each failed rank and its error.
    pub fn agree<T>(&self, outcome: Result<T>) -> Result<T> {
        if self.size == 1 {
            return outcome;
        }
        let mut mine = vec![0.0f64; 1 + MESSAGE_BYTES];
        if let Err(e) = &outcome {
            mine[0] = 1.0;
            let text = e.to_string();
            for (slot, b) in mine[1..].iter_mut().zip(text.bytes()) {
                *slot = b as f64;
            }
        }
        let all = self.all_gather(&mine)?;
        let failed: Vec<String> = all
            .chunks(1 + MESSAGE_BYTES)
            .enumerate()
            .filter(|(_, c)| c[0] != 0.0)
            .map(|(r, c)| {
                let bytes: Vec<u8> = c[1..]
                    .iter()
                    .take_while(|&&b| b != 0.0)
                    .map(|&b| b as u8)
                    .collect();
                format!(
                    "rank {r} of {}: {}",
                    self.size,
                    String::from_utf8_lossy(&bytes)
                )
            })
            .collect();
        match (failed.is_empty(), outcome) {
            (true, o) => o,
            (false, _) => {
                self.agreed_failure.set(true);
                Err(Error::Other(failed.join("; ")))
            }
        }
    }

    /// Whether an [`Group::agree`] failed, or [`Group::fail_together`] was called: every
    /// process holds the same error and can stop on its own, without [`Group::abort`].
    pub fn failed_together(&self) -> bool {
        self.agreed_failure.get()
    }

    /// Marks the error about to be returned as one that every process meets at the same
    /// point (a non-finite loss of the global batch, parameters that every process holds):
    /// rank 0 reports it and all stop without an abort.
    pub fn fail_together(&self, e: Error) -> Error {
        self.agreed_failure.set(true);
        e
    }

    /// Waits until every process has reached this point.
    pub fn barrier(&self) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::CommunicatorCollectives;
            self.timed(|| m.world.barrier());
        }
    }

    /// Stops every process of the job (MPI_Abort) with `code`; a job of one exits.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::Communicator;
            m.world.abort(code);
        }
        std::process::exit(code)
    }
}

/// The rank on this machine from the launcher's environment.
#[cfg(feature = "mpi")]
fn local_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
}

/// Batch-norm statistics summed over the group (`--sync-bn`).
pub struct GroupSync(pub std::rc::Rc<Group>);

impl StatsSync for GroupSync {
    fn sum(&self, v: &mut [f64]) -> Result<()> {
        self.0.sum(v)
    }
}
