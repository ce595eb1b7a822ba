//! OpenCL device layer. Filled in by the OpenCL issue; the crate builds without OpenCL.
