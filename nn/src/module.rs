//! The module interface and state dictionaries.
//!
//! A module owns its parameters (as leaf [`Var`]s that require a gradient) and its buffers
//! (batch-norm running statistics, index tables). [`Module::parameters`] lists the trainable
//! ones with their names; [`Module::save_state`] / [`Module::load_state`] write and read every
//! tensor under PyTorch state-dict names (`stages.0.blocks.1.spatial.bank.0.weight`), so a
//! checkpoint can be read from NumPy.
//!
//! # Loading a checkpoint is validating it
//! [`StateDict::load`] reads every array through the checked `.npz` reader of
//! `shiftgrad_tensor::io` (shapes that overflow, truncated or padded arrays are errors there),
//! then [`StateDict::validate`] checks the values: every float must be finite, and every
//! `*running_var` non-negative, with the key and the first bad element in the error
//! ("stem.conv.weight holds NaN at element 3"). A NaN loaded into a model would otherwise
//! surface epochs later as a NaN loss, far from the file that caused it. Shapes are checked
//! against the model when a module reads its entries ([`StateDict::tensor_shaped`]), and index
//! tables by the module that owns them (`ShiftTables::from_arrays`).
//!
//! Saving reads device tensors back to the host, which can fail: [`Module::save_state`] and
//! [`StateDict::insert`] return `Result` rather than panic inside library code.

use shiftgrad_autograd::Var;
use shiftgrad_tensor::io::{Array, NpzReader, NpzWriter};
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};
use std::path::Path;

/// Training (batch statistics, running averages updated) or evaluation (running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch-norms normalise with the batch's statistics and update their running averages.
    Train,
    /// Batch-norms normalise with their running statistics, left unchanged.
    Eval,
}

/// A trainable parameter with its state-dict name.
#[derive(Clone)]
pub struct ParamRef<T: Real> {
    /// The parameter's state-dict name (`stages.0.blocks.1.spatial.bank.0.weight`).
    pub name: String,
    /// The parameter itself: a leaf that requires a gradient, shared with the module.
    pub var: Var<T>,
    /// Whether weight decay applies (not to batch-norm parameters or biases).
    pub decay: bool,
}

/// A network piece.
///
/// # One walk over every module
/// A module names what it holds once, and inherits [`Module::parameters`],
/// [`Module::save_state`], [`Module::load_state`] and [`Module::move_to`], which walk it: first
/// its own parameters ([`Module::own_parameters`]: a convolution's weight and bias) and float
/// buffers ([`Module::own_buffers`]: batch-norm's running statistics), then its child modules
/// ([`Module::children`], [`Module::children_mut`]: a network's stages, a block's layers), each
/// under `prefix.name`. A container lists children (the [`children!`](crate::children) macro
/// writes both lists from one list of fields), a leaf its own tensors. Only what is neither a
/// parameter nor a float buffer is written by hand, by overriding `save_state` / `load_state`
/// and calling [`save_walk`] / [`load_walk`] for the rest: batch-norm's step counter, the
/// shift-wise layer's index tables and mask.
pub trait Module<T: Real> {
    /// Applies the module. In [`Mode::Train`] batch-norms use batch statistics and update their
    /// running averages.
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>>;
    /// The module's own trainable parameters, in state-dict order: the name under this module,
    /// the variable, and whether weight decay applies; none for a container.
    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        Vec::new()
    }
    /// The module's own float buffers (not trained, saved and moved with it), in state-dict
    /// order after the parameters; none for most modules.
    fn own_buffers(&self) -> Vec<(&'static str, &Tensor<T>)> {
        Vec::new()
    }
    /// The same buffers as [`Module::own_buffers`], mutably.
    fn own_buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        Vec::new()
    }
    /// The child modules, each with its name under this module ("" for one that shares this
    /// module's prefix), in state-dict order; none for a leaf.
    fn children(&self) -> Vec<(String, &dyn Module<T>)> {
        Vec::new()
    }
    /// The same children as [`Module::children`], mutably.
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        Vec::new()
    }
    /// Appends the trainable parameters, named under `prefix`.
    fn parameters(&self, prefix: &str, out: &mut Vec<ParamRef<T>>) {
        for (name, var, decay) in self.own_parameters() {
            out.push(ParamRef {
                name: join(prefix, &name),
                var: var.clone(),
                decay,
            });
        }
        for (name, child) in self.children() {
            child.parameters(&join(prefix, &name), out);
        }
    }
    /// Writes every parameter and buffer under `prefix` (device tensors are read back, which
    /// can fail).
    fn save_state(&self, prefix: &str, sd: &mut StateDict<T>) -> Result<()> {
        save_walk(self, prefix, sd)
    }
    /// Reads every parameter and buffer under `prefix`; a missing name or a shape that differs
    /// from the module's is an error naming both.
    fn load_state(&mut self, prefix: &str, sd: &StateDict<T>) -> Result<()> {
        load_walk(self, prefix, sd)
    }
    /// Moves every parameter and buffer to `device`.
    fn move_to(&mut self, device: &Device) -> Result<()> {
        for (_, var, _) in self.own_parameters() {
            move_var(var, device)?;
        }
        for (_, t) in self.own_buffers_mut() {
            move_tensor(t, device)?;
        }
        for (_, child) in self.children_mut() {
            child.move_to(device)?;
        }
        Ok(())
    }
}

/// What [`Module::save_state`] does by default: the module's own parameters and buffers, then
/// its children's state, each under `prefix`.
pub fn save_walk<T: Real, M: Module<T> + ?Sized>(
    m: &M,
    prefix: &str,
    sd: &mut StateDict<T>,
) -> Result<()> {
    for (name, var, _) in m.own_parameters() {
        sd.insert(join(prefix, &name), var.value().clone())?;
    }
    for (name, t) in m.own_buffers() {
        sd.insert(join(prefix, name), t.clone())?;
    }
    for (name, child) in m.children() {
        child.save_state(&join(prefix, &name), sd)?;
    }
    Ok(())
}

/// What [`Module::load_state`] does by default: the module's own parameters and buffers (each
/// of the module's shape, kept on the module's device), then its children's state.
pub fn load_walk<T: Real, M: Module<T> + ?Sized>(
    m: &mut M,
    prefix: &str,
    sd: &StateDict<T>,
) -> Result<()> {
    for (name, var, _) in m.own_parameters() {
        sd.load_var(&join(prefix, &name), var)?;
    }
    for (name, t) in m.own_buffers_mut() {
        let loaded = sd
            .tensor_shaped(&join(prefix, name), t.shape())?
            .to_device(&t.device())?;
        *t = loaded;
    }
    for (name, child) in m.children_mut() {
        child.load_state(&join(prefix, &name), sd)?;
    }
    Ok(())
}

/// Writes a container's [`Module::children`] and [`Module::children_mut`] from one list of
/// `name => field` pairs, inside an `impl<T: Real> Module<T> for ...` block; `|this|` names
/// the module in the name expressions:
///
/// ```ignore
/// children!(|this| "spatial" => spatial, "pw" => pw, format!("bn{}", this.suffix) => bn);
/// ```
#[macro_export]
macro_rules! children {
    (|$this:ident| $($name:expr => $field:ident),* $(,)?) => {
        fn children(&self) -> Vec<(String, &dyn $crate::Module<T>)> {
            let $this = self;
            vec![$((String::from($name), &$this.$field as &dyn $crate::Module<T>)),*]
        }
        fn children_mut(&mut self) -> Vec<(String, &mut dyn $crate::Module<T>)> {
            let $this = self;
            vec![$((String::from($name), &mut $this.$field as &mut dyn $crate::Module<T>)),*]
        }
    };
}

/// A sequence of modules: applied in order; child `i` is named `i` (`blocks.0`, `blocks.1`).
impl<T: Real, M: Module<T>> Module<T> for Vec<M> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let mut h = x.clone();
        for m in self.iter_mut() {
            h = m.forward(&h, mode)?;
        }
        Ok(h)
    }
    fn children(&self) -> Vec<(String, &dyn Module<T>)> {
        self.iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m as &dyn Module<T>))
            .collect()
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        self.iter_mut()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m as &mut dyn Module<T>))
            .collect()
    }
}

/// An optional module: applied where present, the identity otherwise; the child shares the
/// prefix (`stages.1.down.*`).
impl<T: Real, M: Module<T>> Module<T> for Option<M> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        match self {
            Some(m) => m.forward(x, mode),
            None => Ok(x.clone()),
        }
    }
    fn children(&self) -> Vec<(String, &dyn Module<T>)> {
        self.iter()
            .map(|m| (String::new(), m as &dyn Module<T>))
            .collect()
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        self.iter_mut()
            .map(|m| (String::new(), m as &mut dyn Module<T>))
            .collect()
    }
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

/// `prefix.name`, or `name` at the top, or `prefix` for an empty name.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// One stored array.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<T: Real> {
    /// A float array (parameter or buffer), on the host.
    Float(Tensor<T>),
    /// An int array (an index table, a mask, a counter), as written in int32 or read from a
    /// file in int32 or int64: its shape and its elements, row-major, as i32.
    Int(Shape, Vec<i32>),
    /// Written as int64 (a counter PyTorch keeps in int64); read back from a file as `Int`.
    Int64(Shape, Vec<i64>),
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
    /// Adds (or replaces) a float array (a device tensor is read back to the host; a failed
    /// read-back is an error naming the entry).
    pub fn insert(&mut self, name: String, t: Tensor<T>) -> Result<()> {
        let t = if t.is_host() {
            t
        } else {
            t.to_host().map_err(|e| {
                Error::Other(format!(
                    "state dict: reading {name} back from the device failed: {e}"
                ))
            })?
        };
        self.put(name, Entry::Float(t));
        Ok(())
    }
    /// Adds (or replaces) an int32 array.
    pub fn insert_int(&mut self, name: String, shape: &[usize], data: Vec<i32>) {
        self.put(name, Entry::Int(Shape::new(shape), data));
    }
    /// Adds (or replaces) an int64 array.
    pub fn insert_int64(&mut self, name: String, shape: &[usize], data: Vec<i64>) {
        self.put(name, Entry::Int64(Shape::new(shape), data));
    }
    /// A one-element integer entry (int32 or int64) as i64.
    pub fn count(&self, name: &str) -> Result<i64> {
        let one = |n: usize| match n {
            1 => Ok(()),
            n => Err(Error::Other(format!(
                "state dict: {name} holds {n} integers, expected one"
            ))),
        };
        match self.entry(name)? {
            Entry::Int(_, d) => one(d.len()).map(|_| i64::from(d[0])),
            Entry::Int64(_, d) => one(d.len()).map(|_| d[0]),
            Entry::Float(_) => Err(Error::Other(format!(
                "state dict: {name} holds floats, expected an integer"
            ))),
        }
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
            Entry::Int(..) | Entry::Int64(..) => Err(Error::Other(format!(
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
            Entry::Int64(..) => Err(Error::Other(format!(
                "state dict: {name} holds int64 integers, expected int32"
            ))),
        }
    }
    /// An int32 array by name, checked against the shape the module expects.
    pub fn int_shaped(&self, name: &str, expected: &[usize]) -> Result<&[i32]> {
        let (shape, data) = self.int(name)?;
        if shape.dims() != expected {
            return Err(Error::Other(format!(
                "state dict: {name} has shape {shape}, the model expects {}",
                Shape::new(expected)
            )));
        }
        Ok(data)
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
                Entry::Int64(s, d) => w.int64(name, s.dims(), d)?,
            }
        }
        w.finish()
    }
    /// Reads an `.npz` file: float arrays as `T`, integer arrays as int32; then checks the
    /// values ([`StateDict::validate`]). Every error names the file and the entry.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut r = NpzReader::open(path)?;
        let mut sd = StateDict::new();
        let mut names = r.names();
        names.sort();
        for name in names {
            let entry = match r.array::<T>(&name)? {
                Array::Float(t) => Entry::Float(t),
                Array::Int(shape, data) => Entry::Int(shape, data),
            };
            if let Err(msg) = check_entry(&name, &entry) {
                return Err(Error::file(path, format!("checkpoint: {msg}")));
            }
            sd.put(name, entry);
        }
        Ok(sd)
    }

    /// Checks the values of every entry: floats finite, `*running_var` non-negative. The error
    /// names the entry and its first bad element.
    pub fn validate(&self) -> Result<()> {
        for (name, entry) in &self.entries {
            check_entry(name, entry).map_err(|msg| Error::Other(format!("checkpoint: {msg}")))?;
        }
        Ok(())
    }
}

/// The value checks of [`StateDict::validate`] for one entry; the message names the entry.
fn check_entry<T: Real>(name: &str, entry: &Entry<T>) -> std::result::Result<(), String> {
    let Entry::Float(t) = entry else {
        return Ok(());
    };
    if !t.is_host() {
        // Entries are always host tensors (insert reads device tensors back); a device tensor
        // here would need a read-back that validation has no business doing.
        return Err(format!("{name} is not on the host"));
    }
    if let Some((i, v)) = t
        .data()
        .iter()
        .enumerate()
        .find(|(_, v)| !v.as_f64().is_finite())
    {
        let what = if v.as_f64().is_nan() {
            "NaN".to_string()
        } else {
            format!("{}", v.as_f64())
        };
        return Err(format!("{name} holds {what} at element {i}"));
    }
    if name.ends_with("running_var") {
        if let Some((i, v)) = t.data().iter().enumerate().find(|(_, v)| v.as_f64() < 0.0) {
            return Err(format!(
                "{name} holds the negative variance {} at element {i}",
                v.as_f64()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_with(name: &str, values: Vec<f64>) -> StateDict<f64> {
        let mut sd = StateDict::new();
        let n = values.len();
        sd.insert(name.into(), Tensor::new([n], values).unwrap())
            .unwrap();
        sd
    }

    #[test]
    fn validation_names_the_key_and_the_element() {
        sd_with("a.running_var", vec![0.0, 1.0]).validate().unwrap();
        sd_with("a.weight", vec![-1.0, 1.0]).validate().unwrap();
        let cases = [
            (
                "a.weight",
                vec![1.0, 2.0, f64::NAN],
                "a.weight holds NaN at element 2",
            ),
            (
                "b.bias",
                vec![f64::INFINITY],
                "b.bias holds inf at element 0",
            ),
            (
                "c.running_var",
                vec![1.0, -0.25],
                "c.running_var holds the negative variance -0.25 at element 1",
            ),
            (
                "d.running_var",
                vec![f64::NEG_INFINITY],
                "d.running_var holds -inf at element 0",
            ),
        ];
        for (name, values, want) in cases {
            let e = sd_with(name, values).validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn int_entries_are_shape_checked() {
        let mut sd = StateDict::<f32>::new();
        sd.insert_int("t".into(), &[2, 3], vec![0; 6]);
        assert_eq!(sd.int_shaped("t", &[2, 3]).unwrap().len(), 6);
        let e = sd.int_shaped("t", &[3, 2]).unwrap_err().to_string();
        assert!(
            e.contains("t has shape [2, 3], the model expects [3, 2]"),
            "{e}"
        );
    }
}
