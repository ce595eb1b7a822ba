//! The module interface and state dictionaries.
//!
//! A module owns its parameters (as leaf [`Var`]s that require a gradient) and its buffers
//! (batch-norm running statistics, index tables). [`Module::parameters`] lists the trainable
//! ones with their names; [`Module::save_state`] / [`Module::load_state`] write and read every
//! tensor under PyTorch state-dict names (`stages.0.blocks.1.spatial.bank.0.weight`), so a
//! checkpoint can be read from NumPy.

use shiftgrad_autograd::Var;
use shiftgrad_tensor::io::{NpzReader, NpzWriter};
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};
use std::path::Path;

/// Training (batch statistics, running averages updated) or evaluation (running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A trainable parameter with its state-dict name.
#[derive(Clone)]
pub struct ParamRef<T: Real> {
    pub name: String,
    pub var: Var<T>,
    /// Whether weight decay applies (not to batch-norm parameters or biases).
    pub decay: bool,
}

/// A network piece.
pub trait Module<T: Real> {
    /// Applies the module. In [`Mode::Train`] batch-norms use batch statistics and update their
    /// running averages.
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>>;
    /// Appends the trainable parameters, named under `prefix`.
    fn parameters(&self, prefix: &str, out: &mut Vec<ParamRef<T>>);
    /// Writes every parameter and buffer under `prefix`.
    fn save_state(&self, prefix: &str, sd: &mut StateDict<T>);
    /// Reads every parameter and buffer under `prefix`; a missing name or a shape that differs
    /// from the module's is an error naming both.
    fn load_state(&mut self, prefix: &str, sd: &StateDict<T>) -> Result<()>;
    /// Moves every parameter and buffer to `device`.
    fn move_to(&mut self, device: &Device) -> Result<()>;
}

/// Moves a parameter's value to `device` (no-op if it is there).
pub fn move_var<T: Real>(var: &Var<T>, device: &Device) -> Result<()> {
    if var.value().device().same(device) {
        return Ok(());
    }
    let t = var.value().to_device(device)?;
    var.set_value(t)
}

/// Moves a buffer to `device` (no-op if it is there).
pub fn move_tensor<T: Real>(t: &mut Tensor<T>, device: &Device) -> Result<()> {
    if !t.device().same(device) {
        *t = t.to_device(device)?;
    }
    Ok(())
}

/// `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// One stored array.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<T: Real> {
    Float(Tensor<T>),
    Int(Shape, Vec<i32>),
}

/// Named arrays in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict<T: Real> {
    entries: Vec<(String, Entry<T>)>,
}

impl<T: Real> StateDict<T> {
    /// An empty dictionary.
    pub fn new() -> Self {
        StateDict {
            entries: Vec::new(),
        }
    }
    /// Adds (or replaces) a float array (a device tensor is read back to the host).
    pub fn insert(&mut self, name: String, t: Tensor<T>) {
        let t = if t.is_host() {
            t
        } else {
            t.to_host()
                .expect("state dict: reading a device tensor back failed")
        };
        self.put(name, Entry::Float(t));
    }
    /// Adds (or replaces) an int32 array.
    pub fn insert_int(&mut self, name: String, shape: &[usize], data: Vec<i32>) {
        self.put(name, Entry::Int(Shape::new(shape), data));
    }
    fn put(&mut self, name: String, e: Entry<T>) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = e,
            None => self.entries.push((name, e)),
        }
    }
    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
    /// Number of arrays.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    fn entry(&self, name: &str) -> Result<&Entry<T>> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
            .ok_or_else(|| Error::Other(format!("state dict: no entry named {name}")))
    }
    /// A float array by name.
    pub fn tensor(&self, name: &str) -> Result<&Tensor<T>> {
        match self.entry(name)? {
            Entry::Float(t) => Ok(t),
            Entry::Int(..) => Err(Error::Other(format!(
                "state dict: {name} holds integers, expected floats"
            ))),
        }
    }
    /// A float array by name, checked against the shape the module expects.
    pub fn tensor_shaped(&self, name: &str, expected: &Shape) -> Result<&Tensor<T>> {
        let t = self.tensor(name)?;
        if t.shape() != expected {
            return Err(Error::Other(format!(
                "state dict: {name} has shape {}, the model expects {expected}",
                t.shape()
            )));
        }
        Ok(t)
    }
    /// An int32 array by name, with its shape.
    pub fn int(&self, name: &str) -> Result<(&Shape, &[i32])> {
        match self.entry(name)? {
            Entry::Int(s, d) => Ok((s, d)),
            Entry::Float(_) => Err(Error::Other(format!(
                "state dict: {name} holds floats, expected integers"
            ))),
        }
    }
    /// Loads a parameter's value from `name` (shape checked).
    pub fn load_var(&self, name: &str, var: &Var<T>) -> Result<()> {
        let t = self.tensor_shaped(name, &var.shape())?;
        let device = var.value().device();
        var.set_value(t.to_device(&device)?)
    }
    /// Writes to an `.npz` file atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = NpzWriter::create(path)?;
        for (name, e) in &self.entries {
            match e {
                Entry::Float(t) => w.tensor(name, t)?,
                Entry::Int(s, d) => w.int32(name, s.dims(), d)?,
            }
        }
        w.finish()
    }
    /// Reads an `.npz` file: float arrays as `T`, integer arrays as int32.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let mut r = NpzReader::open(path.as_ref())?;
        let mut sd = StateDict::new();
        let mut names = r.names();
        names.sort();
        for name in names {
            match r.tensor::<T>(&name) {
                Ok(t) => sd.insert(name, t),
                Err(float_err) => match r.int32(&name) {
                    Ok((s, d)) => sd.insert_int(name, s.dims(), d),
                    Err(_) => return Err(float_err),
                },
            }
        }
        Ok(sd)
    }
}
