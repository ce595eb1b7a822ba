use super::*;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shiftgrad-io-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn npy_round_trip_and_conversion() {
    let d = tmpdir("npy");
    let t = Tensor::<f32>::from_fn([2, 3, 4], |i| i as f32 * 0.5);
    write_npy(d.join("a.npy"), &t).unwrap();
    let back: Tensor<f32> = read_npy(d.join("a.npy")).unwrap();
    assert_eq!(back, t);
    let wide: Tensor<f64> = read_npy(d.join("a.npy")).unwrap();
    assert_eq!(wide.dims(), &[2, 3, 4]);
    assert_eq!(wide.data()[3], 1.5);
}

#[test]
fn npz_round_trip() {
    let d = tmpdir("npz");
    let p = d.join("x.npz");
    let mut w = NpzWriter::create(&p).unwrap();
    let t = Tensor::<f64>::from_fn([3, 2], |i| i as f64);
    w.tensor("weight", &t).unwrap();
    w.int32("pad_hv", &[2, 2], &[1, -2, 3, 4]).unwrap();
    w.finish().unwrap();
    let mut r = NpzReader::open(&p).unwrap();
    let mut names = r.names();
    names.sort();
    assert_eq!(names, ["pad_hv", "weight"]);
    assert_eq!(r.tensor::<f64>("weight").unwrap(), t);
    assert_eq!(r.int32("pad_hv").unwrap().1, vec![1, -2, 3, 4]);
    let e = r.tensor::<f64>("missing").unwrap_err().to_string();
    assert!(e.contains("no array named missing"), "{e}");
    assert!(r.tensor::<f64>("pad_hv").is_err());
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let d = tmpdir("bad");
    let p = d.join("junk.npy");
    std::fs::write(&p, b"not numpy").unwrap();
    let e = read_npy::<f32>(&p).unwrap_err().to_string();
    assert!(e.contains("junk.npy"), "{e}");
    let e = NpzReader::open(d.join("nothing.npz"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nothing.npz"), "{e}");
}

/// A version-1 `.npy` file with `header` (padded as NumPy pads it) and `data`.
fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend((text.len() as u16).to_le_bytes());
    v.extend(text.as_bytes());
    v.extend(data);
    v
}

fn read_bytes(tag: &str, bytes: &[u8]) -> Result<Tensor<f64>> {
    let p = tmpdir("hdr").join(format!("{tag}.npy"));
    std::fs::write(&p, bytes).unwrap();
    read_npy::<f64>(&p)
}

fn err_of(tag: &str, bytes: &[u8]) -> String {
    let e = read_bytes(tag, bytes).unwrap_err().to_string();
    assert!(e.contains(&format!("{tag}.npy")), "{e}");
    e
}

#[test]
fn numpy_headers_parse() {
    let data: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    for header in [
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        "{\"shape\": (2L,), \"descr\": \"<f8\", \"fortran_order\": False}",
        "{'descr':'<f8','fortran_order':False,'shape':(1, 2)}",
    ] {
        let t = read_bytes("ok", &npy_bytes(header, &data)).unwrap();
        assert_eq!(t.data(), &[1.5, -2.0], "{header}");
    }
    let scalar = npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
        &data[..8],
    );
    assert_eq!(
        read_bytes("scalar", &scalar).unwrap().dims(),
        &[] as &[usize]
    );
    let empty = npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }",
        &[],
    );
    assert_eq!(read_bytes("empty", &empty).unwrap().numel(), 0);
}

#[test]
fn malformed_headers_are_errors() {
    let h = |shape: &str, descr: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    let data = [0u8; 16];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "magic",
            b"PK\x03\x04 not numpy".to_vec(),
            "magic number is missing",
        ),
        ("short", b"\x93NUM".to_vec(), "truncated"),
        (
            "version",
            b"\x93NUMPY\x07\x00\x10\x00{}".to_vec(),
            "unsupported .npy format version 7.0",
        ),
        (
            "hugeheader",
            b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(),
            "more than the 65536 accepted",
        ),
        (
            "headerpastend",
            b"\x93NUMPY\x01\x00\x00\x01{'descr'".to_vec(),
            "truncated",
        ),
        (
            "dtype",
            npy_bytes(&h("(2,)", ">f8"), &data),
            "dtype '>f8' is not supported",
        ),
        ("notuple", npy_bytes(&h("(2)", "<f8"), &data), "not a tuple"),
        (
            "negative",
            npy_bytes(&h("(-2,)", "<f8"), &data),
            "non-negative integer",
        ),
        (
            "bigdim",
            npy_bytes(&h("(99999999999999999999,)", "<f8"), &data),
            "does not fit in 64 bits",
        ),
        (
            "wrapped",
            npy_bytes(&h("(2147483648, 2147483648, 4)", "<f8"), &[]),
            "overflows",
        ),
        (
            "wrappedbytes",
            npy_bytes(&h("(2305843009213693952,)", "<f8"), &[]),
            "needs more bytes",
        ),
        (
            "trunc",
            npy_bytes(&h("(3,)", "<f8"), &data),
            "truncated: shape [3] of <f8 needs 24 bytes",
        ),
        (
            "trailing",
            npy_bytes(&h("(1,)", "<f8"), &data),
            "8 trailing bytes",
        ),
        (
            "fortran",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }",
                &data,
            ),
            "Fortran-ordered",
        ),
        (
            "extrakey",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 'y'}",
                &data,
            ),
            "unexpected key 'x'",
        ),
        (
            "nokey",
            npy_bytes("{'descr': '<f8', 'fortran_order': False}", &data),
            "lacks 'shape'",
        ),
        (
            "twice",
            npy_bytes("{'descr': '<f8', 'descr': '<f8', 'shape': (2,)}", &data),
            "appears twice",
        ),
        (
            "kind",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': 'no', 'shape': (2,)}",
                &data,
            ),
            "wrong kind of value",
        ),
        (
            "junkafter",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x",
                &data,
            ),
            "unexpected text after the dictionary",
        ),
        (
            "unterminated",
            npy_bytes("{'descr: <f8", &data),
            "unterminated string",
        ),
        (
            "ints",
            npy_bytes(&h("(2,)", "<i8"), &data),
            "expected float32 or float64",
        ),
    ];
    for (tag, bytes, want) in cases {
        let e = err_of(tag, &bytes);
        assert!(e.contains(want), "{tag}: {e}");
    }
}

#[test]
fn an_endless_entry_is_read_one_byte_past_its_shape() {
    // An archive entry whose declared size is right but whose stream does not end there
    // (a lying zip entry): reading stops one byte past the data the shape needs.
    let bytes = npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        &[0; 16],
    );
    let src = Source {
        path: Path::new("x.npz"),
        name: "w",
        len: bytes.len() as u64,
        holder: "archive entry",
    };
    let endless = (&bytes[..]).chain(std::io::repeat(0));
    let e = read_array::<f64>(endless, &src).unwrap_err().to_string();
    assert!(
        e.contains("x.npz: w: trailing bytes after the 16 bytes"),
        "{e}"
    );
}

#[test]
fn int64_outside_int32_is_an_error() {
    let d = tmpdir("i64");
    let p = d.join("t.npz");
    let mut w = NpzWriter::create(&p).unwrap();
    w.add::<i64>("big", &[2], &[7, 1 << 40]).unwrap();
    w.add::<i64>("small", &[2], &[7, -3]).unwrap();
    w.finish().unwrap();
    let mut r = NpzReader::open(&p).unwrap();
    assert_eq!(r.int32("small").unwrap().1, vec![7, -3]);
    let e = r.int32("big").unwrap_err().to_string();
    assert!(
        e.contains("big: value 1099511627776 at element 1 does not fit in int32"),
        "{e}"
    );
}
