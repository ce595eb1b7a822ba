//! Backward: the order of the nodes, each node's gradient function, the accumulation of
//! gradients where a value feeds several ops, and the release of the graph as it goes.

use super::*;

impl<T: Real> Var<T> {
    /// Back-propagates from a scalar (one-element) value with seed gradient 1.
    pub fn backward(&self) -> Result<()> {
        if self.value().numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("needs a scalar to start from, got shape {}", self.shape()),
            ));
        }
        let device = self.value().device();
        self.backward_with(Tensor::full_on(self.shape(), T::one(), &device)?)
    }

    /// Back-propagates with the given gradient of this value (a vector-Jacobian product).
    /// The seed is moved to this value's device if it is elsewhere.
    pub fn backward_with(&self, seed: Tensor<T>) -> Result<()> {
        self.value().check_same_shape(&seed, "backward")?;
        if !self.requires_grad() {
            return Err(Error::arg(
                "backward",
                "the value does not require a gradient (no input of its graph does)",
            ));
        }
        let device = self.value().device();
        let seed = if seed.device().same(&device) {
            seed
        } else {
            seed.to_device(&device)?
        };
        let mut order = self.topological_order();
        accumulate(&self.0, seed)?;
        // Children before parents. Popping (rather than iterating) drops this walk's handle on
        // each node as soon as its backward has run: with its closure (and the values it
        // saved) consumed and its parent list taken, the node's output is freed here unless
        // someone else still holds it, so activations are released while backward proceeds.
        while let Some(node) = order.pop() {
            let Some(backward) = node.backward.borrow_mut().take() else {
                if node.released.get() {
                    return Err(Error::Other(format!(
                        "backward: the graph through {} was already released by an earlier backward()",
                        node.op
                    )));
                }
                continue; // a leaf: keep its gradient
            };
            node.released.set(true);
            if node.version.get() != 0 {
                // Backward closures may read the node's own output (relu does).
                return Err(Error::arg(
                    node.op,
                    "its output was modified after the forward; the gradient would be wrong",
                ));
            }
            let _region = region::enter(node.region);
            let parents = std::mem::take(&mut *node.parents.borrow_mut());
            let needs: Vec<bool> = parents.iter().map(|p| p.requires_grad()).collect();
            let grads = match backward {
                Backward::Output(i) => {
                    // Hand the gradient to the op's hidden node (the only parent).
                    if let (Some(g), Some(hub)) = (node.grad.borrow_mut().take(), parents.first()) {
                        if let Some(slot) = hub.0.output_grads.borrow_mut().get_mut(i) {
                            *slot = Some(g);
                        }
                    }
                    continue;
                }
                Backward::Single(f) => {
                    let Some(grad_out) = node.grad.borrow_mut().take() else {
                        continue; // nothing flowed here
                    };
                    let output = node.value.borrow();
                    f(BackwardCtx {
                        grad_out: &grad_out,
                        output: &output,
                        needs: &needs,
                    })?
                }
                Backward::Multi(f) => {
                    let grads_out = std::mem::take(&mut *node.output_grads.borrow_mut());
                    if grads_out.iter().all(Option::is_none) {
                        continue; // no output was used
                    }
                    f(MultiBackwardCtx {
                        grads_out: &grads_out,
                        needs: &needs,
                    })?
                }
            };
            if grads.len() != parents.len() {
                return Err(Error::Other(format!(
                    "backward of {}: returned {} gradients for {} inputs",
                    node.op,
                    grads.len(),
                    parents.len()
                )));
            }
            for (parent, grad) in parents.iter().zip(grads) {
                if let (true, Some(g)) = (parent.requires_grad(), grad) {
                    if g.shape() != parent.value().shape() {
                        return Err(Error::Other(format!(
                            "backward of {}: gradient of shape {} for an input of shape {}",
                            node.op,
                            g.shape(),
                            parent.shape()
                        )));
                    }
                    accumulate(&parent.0, g)?;
                }
            }
        }
        Ok(())
    }

    /// Nodes that require a gradient, reachable from `self`, parents before children.
    fn topological_order(&self) -> Vec<Rc<Node<T>>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        // Iterative post-order DFS: deep networks must not overflow the stack.
        let mut stack: Vec<(Rc<Node<T>>, bool)> = vec![(self.0.clone(), false)];
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                order.push(node);
                continue;
            }
            if !seen.insert(node.id) {
                continue;
            }
            stack.push((node.clone(), true));
            for p in node.parents.borrow().iter() {
                if p.requires_grad() && !seen.contains(&p.0.id) {
                    stack.push((p.0.clone(), false));
                }
            }
        }
        order
    }
}

impl<T: Real> Drop for Node<T> {
    /// Releases a long chain iteratively: the default recursive drop would overflow the stack
    /// on a graph that was built but never back-propagated.
    fn drop(&mut self) {
        drop(self.backward.get_mut().take());
        let mut stack = std::mem::take(self.parents.get_mut());
        while let Some(var) = stack.pop() {
            if let Ok(mut node) = Rc::try_unwrap(var.0) {
                drop(node.backward.get_mut().take());
                stack.append(node.parents.get_mut());
            }
        }
    }
}

/// The profiling region of gradient accumulation: where a value feeds several ops, the
/// gradients its backward receives are summed here, counted as their own row (one addition
/// per element; reads both, writes one) rather than inside the op that happens to run.
pub const REGION_ACCUMULATE: &str = "gradient accumulation";

fn accumulate<T: Real>(node: &Node<T>, g: Tensor<T>) -> Result<()> {
    let mut slot = node.grad.borrow_mut();
    match slot.as_mut() {
        Some(acc) => {
            let _region = region::enter(REGION_ACCUMULATE);
            acc.add_assign(&g)?;
            let n = g.numel() as u64;
            shiftgrad_tensor::counters::record_op(n, 0, 3 * n * T::DTYPE.size() as u64);
            Ok(())
        }
        None => {
            *slot = Some(g);
            Ok(())
        }
    }
}
