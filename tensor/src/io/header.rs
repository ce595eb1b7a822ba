//! The `.npy` header, parsed by hand (see the parent module for why not with npyz).
//!
//! NumPy writes the header as a Python dictionary literal,
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, padded with spaces to a
//! multiple of 64 bytes. [`read_header`] reads the magic number, the version and the header
//! length (capped at [`MAX_HEADER_LEN`] and by the bytes the stream holds), parses the
//! dictionary with a parser that accepts exactly that grammar (strings without escapes,
//! `True` / `False`, tuples of non-negative integers), and checks the three keys: a supported
//! dtype, C order, and a shape whose element and byte counts fit, and whose data is exactly as
//! long as the stream says.

use super::MAX_HEADER_LEN;
use crate::{Error, Result, Shape};
use std::fmt::Display;
use std::io::Read;
use std::path::Path;

/// The element types this reader accepts (little-endian, as NumPy writes them on every
/// common machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dtype {
    F32,
    F64,
    I32,
    I64,
}

impl Dtype {
    pub(super) fn from_descr(descr: &str) -> Option<Self> {
        match descr {
            "<f4" => Some(Dtype::F32),
            "<f8" => Some(Dtype::F64),
            "<i4" => Some(Dtype::I32),
            "<i8" => Some(Dtype::I64),
            _ => None,
        }
    }
    pub(super) fn size(self) -> u64 {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }
    pub(super) fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
        }
    }
}

/// Where an array is read from, for the error messages and the length checks.
pub(super) struct Source<'a> {
    pub(super) path: &'a Path,
    /// The array's name (`array` for a lone `.npy` file).
    pub(super) name: &'a str,
    /// Bytes the stream holds, header included.
    pub(super) len: u64,
    /// What holds them ("file", "archive entry").
    pub(super) holder: &'static str,
}

impl Source<'_> {
    pub(super) fn err(&self, msg: impl Display) -> Error {
        Error::file(self.path, format!("{}: {msg}", self.name))
    }
}

/// A parsed `.npy` header.
pub(super) struct Header {
    pub(super) dtype: Dtype,
    pub(super) shape: Shape,
    /// Bytes of data the shape needs.
    pub(super) data_len: u64,
}

/// A value of the header dictionary.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// A parser for the one Python literal NumPy writes as a header:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` (spaces, a trailing comma and
/// Python 2's `3L` allowed; nothing else).
struct HeaderParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> HeaderParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }
    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }
    /// Skips spaces, then consumes `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.at))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.skip_space();
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a string at byte {}", self.at)),
        };
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == quote {
                let s = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
                self.at += 1;
                return Ok(s);
            }
            if c == b'\\' {
                return Err(format!("escape sequence at byte {}", self.at));
            }
            self.at += 1;
        }
        Err("unterminated string".into())
    }
    fn integer(&mut self) -> std::result::Result<u64, String> {
        self.skip_space();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| format!("dimension at byte {start} does not fit in 64 bits"))?;
            self.at += 1;
        }
        if self.at == start {
            return Err(format!(
                "expected a non-negative integer at byte {}",
                self.at
            ));
        }
        if self.peek() == Some(b'L') {
            self.at += 1;
        }
        Ok(n)
    }
    fn tuple(&mut self) -> std::result::Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        let mut trailing_comma = false;
        while !self.eat(b')') {
            dims.push(self.integer()?);
            trailing_comma = self.eat(b',');
            if !trailing_comma {
                self.expect(b')')?;
                break;
            }
        }
        if dims.len() == 1 && !trailing_comma {
            return Err("shape (n) is not a tuple, NumPy writes (n,)".into());
        }
        Ok(dims)
    }
    fn value(&mut self) -> std::result::Result<Value, String> {
        self.skip_space();
        let rest = &self.text[self.at..];
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => Ok(Value::Tuple(self.tuple()?)),
            _ if rest.starts_with(b"True") => {
                self.at += 4;
                Ok(Value::Bool(true))
            }
            _ if rest.starts_with(b"False") => {
                self.at += 5;
                Ok(Value::Bool(false))
            }
            _ => Err(format!("unexpected value at byte {}", self.at)),
        }
    }
    fn dict(mut self) -> std::result::Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut items: Vec<(String, Value)> = Vec::new();
        while !self.eat(b'}') {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            if items.iter().any(|(k, _)| *k == key) {
                return Err(format!("key '{key}' appears twice"));
            }
            items.push((key, value));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.skip_space();
        if self.at != self.text.len() {
            return Err(format!(
                "unexpected text after the dictionary at byte {}",
                self.at
            ));
        }
        Ok(items)
    }
}

/// Fills `buf`, or reports a truncated stream.
fn read_exact(r: &mut impl Read, buf: &mut [u8], src: &Source, what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => src.err(format!(
            "truncated: the {} ends inside the {what}",
            src.holder
        )),
        _ => src.err(format!("reading the {what}: {e}")),
    })
}

/// Reads and checks the header; leaves `r` at the first data byte.
pub(super) fn read_header(r: &mut impl Read, src: &Source) -> Result<Header> {
    let mut pre = [0u8; 8];
    read_exact(r, &mut pre, src, ".npy magic number")?;
    if !pre.starts_with(b"\x93NUMPY") {
        return Err(src.err("not a .npy array (the \\x93NUMPY magic number is missing)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (len_field, header_len) = match major {
        1 => {
            let mut b = [0u8; 2];
            read_exact(r, &mut b, src, "header length")?;
            (2u64, usize::from(u16::from_le_bytes(b)))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_exact(r, &mut b, src, "header length")?;
            (
                4u64,
                usize::try_from(u32::from_le_bytes(b)).unwrap_or(usize::MAX),
            )
        }
        _ => return Err(src.err(format!("unsupported .npy format version {major}.{minor}"))),
    };
    if header_len > MAX_HEADER_LEN {
        return Err(src.err(format!(
            "header claims {header_len} bytes, more than the {MAX_HEADER_LEN} accepted"
        )));
    }
    let prefix = 8 + len_field + header_len as u64;
    if prefix > src.len {
        return Err(src.err(format!(
            "truncated: the header claims {header_len} bytes, the {} holds {} in all",
            src.holder, src.len
        )));
    }
    let mut text = vec![0u8; header_len];
    read_exact(r, &mut text, src, "header")?;
    let shown = String::from_utf8_lossy(&text[..text.len().min(200)])
        .trim_end()
        .to_string();
    let items = HeaderParser { text: &text, at: 0 }
        .dict()
        .map_err(|m| src.err(format!("malformed .npy header ({m}): {shown}")))?;
    let (mut descr, mut fortran, mut dims) = (None, None, None);
    for (key, value) in items {
        match (key.as_str(), value) {
            ("descr", Value::Str(d)) => descr = Some(d),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => dims = Some(t),
            ("descr" | "fortran_order" | "shape", v) => {
                return Err(src.err(format!(
                    "header key '{key}' has the wrong kind of value {v:?}"
                )))
            }
            _ => return Err(src.err(format!("unexpected key '{key}' in the .npy header"))),
        }
    }
    let missing = |k: &str| src.err(format!("the .npy header lacks '{k}'"));
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let dims = dims.ok_or_else(|| missing("shape"))?;
    let dtype = Dtype::from_descr(&descr).ok_or_else(|| {
        src.err(format!(
            "dtype '{descr}' is not supported (expected <f4, <f8, <i4 or <i8)"
        ))
    })?;
    if fortran {
        return Err(src.err("Fortran-ordered arrays are not supported"));
    }
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            src.err(format!(
                "shape {dims:?} has a dimension that does not fit in usize"
            ))
        })?;
    let shape = Shape::try_new(&dims).map_err(|_| {
        src.err(format!(
            "shape {dims:?} overflows: the product of its dimensions does not fit in usize"
        ))
    })?;
    let data_len = (shape.numel() as u64)
        .checked_mul(dtype.size())
        .ok_or_else(|| {
            src.err(format!(
                "shape {shape} of {descr} needs more bytes than u64 holds"
            ))
        })?;
    let avail = src.len - prefix;
    if data_len > avail {
        return Err(src.err(format!(
            "truncated: shape {shape} of {descr} needs {data_len} bytes of data, the {} holds {avail}",
            src.holder
        )));
    }
    if data_len < avail {
        return Err(src.err(format!(
            "{} trailing bytes after the {data_len} bytes of data of shape {shape}",
            avail - data_len
        )));
    }
    Ok(Header {
        dtype,
        shape,
        data_len,
    })
}
