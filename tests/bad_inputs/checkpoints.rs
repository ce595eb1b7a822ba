//! `.npz` checkpoints for `StateDict::load` and `Module::load_state`: non-finite values, broken
//! archives, truncations and bit flips, bad npy headers, lying sizes, disagreeing models.

use super::*;

fn small_model(seed: u64) -> SwResNet<f32> {
    let mut c = ResNetConfig::preset("sw-resnet-tiny").unwrap();
    c.widths = vec![8, 12];
    c.depths = vec![1, 1];
    c.big_kernels = vec![7, 5];
    c.spatial = SpatialKind::Sw;
    c.seed = seed;
    SwResNet::new(c).unwrap()
}

/// A valid checkpoint of a small model, with its state dict.
fn good_checkpoint(dir: &Path) -> (PathBuf, StateDict<f32>) {
    let sd = small_model(1).state_dict().unwrap();
    let path = dir.join("good.npz");
    sd.save(&path).unwrap();
    (path, sd)
}

/// `sd` with the float entry `name` changed by `edit`, saved as `<tag>.npz`.
fn edited(
    dir: &Path,
    tag: &str,
    sd: &StateDict<f32>,
    name: &str,
    edit: impl FnOnce(&mut Tensor<f32>),
) -> PathBuf {
    let mut sd = sd.clone();
    let mut t = sd.tensor(name).unwrap().clone();
    edit(&mut t);
    sd.insert(name.to_string(), t).unwrap();
    let path = dir.join(format!("{tag}.npz"));
    sd.save(&path).unwrap();
    path
}

/// Loading `path` as a state dict fails with all of `want` (and the file name) in the message.
fn load_case(case: &str, path: &Path, want: &[&str]) {
    let file = path.file_name().unwrap().to_str().unwrap().to_string();
    let mut want = want.to_vec();
    want.push(&file);
    expect_err(case, &want, || StateDict::<f32>::load(path));
}

/// Loading `path` succeeds, loading it into a fresh model fails with all of `want`.
fn model_case(case: &str, path: &Path, want: &[&str]) {
    let sd = StateDict::<f32>::load(path).unwrap();
    let mut model = small_model(2);
    expect_err(case, want, || model.load_state("", &sd));
}

#[test]
fn the_good_checkpoint_round_trips() {
    let d = scratch("ckpt-good");
    let (path, sd) = good_checkpoint(&d);
    let back = StateDict::<f32>::load(&path).unwrap();
    assert_eq!(back.len(), sd.len());
    back.validate().unwrap();
    small_model(2).load_state("", &back).unwrap();
}

#[test]
fn non_finite_values_and_negative_variances() {
    let d = scratch("ckpt-values");
    let (_, sd) = good_checkpoint(&d);
    let nan = edited(&d, "nan", &sd, "stem.conv.weight", |t| {
        t.data_mut()[3] = f32::NAN
    });
    load_case(
        "nan",
        &nan,
        &["checkpoint: stem.conv.weight holds NaN at element 3"],
    );
    let inf = edited(&d, "inf", &sd, "head.weight", |t| {
        t.data_mut()[0] = f32::INFINITY
    });
    load_case(
        "inf",
        &inf,
        &["checkpoint: head.weight holds inf at element 0"],
    );
    let ninf = edited(&d, "neg-inf", &sd, "stages.1.blocks.0.bn.bias", |t| {
        t.data_mut()[5] = f32::NEG_INFINITY
    });
    load_case(
        "neg-inf",
        &ninf,
        &["stages.1.blocks.0.bn.bias holds -inf at element 5"],
    );
    let var = edited(&d, "neg-var", &sd, "stem.bn.running_var", |t| {
        t.data_mut()[2] = -0.5
    });
    load_case(
        "neg-var",
        &var,
        &["stem.bn.running_var holds the negative variance -0.5 at element 2"],
    );
    // The same checks on a state dict built in memory.
    let mut bad = sd.clone();
    let mut t = sd.tensor("stem.bn.running_var").unwrap().clone();
    t.data_mut()[1] = -1.0;
    bad.insert("stem.bn.running_var".into(), t).unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("stem.bn.running_var holds the negative variance"),
        "{e}"
    );
}

#[test]
fn broken_archives() {
    let d = scratch("ckpt-archives");
    let (good, _) = good_checkpoint(&d);
    let bytes = std::fs::read(&good).unwrap();
    let half = d.join("half.npz");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    load_case("truncated", &half, &["not a valid .npz (zip) archive"]);
    let text = d.join("text.npz");
    std::fs::write(&text, "this is not an archive\n").unwrap();
    load_case("not-npz", &text, &["not a valid .npz (zip) archive"]);
    let missing = d.join("missing.npz");
    load_case("missing", &missing, &["missing.npz"]);
}

#[test]
fn every_truncation_and_many_bit_flips_are_errors_not_panics() {
    let d = scratch("ckpt-fuzz");
    // A small archive (two entries) keeps the exhaustive truncation sweep fast.
    let mut sd = StateDict::<f32>::new();
    sd.insert_int("t".into(), &[2, 2], vec![1, -2, 3, 4]);
    sd.insert("w".into(), Tensor::from_fn([3, 4], |i| i as f32 * 0.25))
        .unwrap();
    let good = d.join("small.npz");
    sd.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let probe = d.join("probe.npz");
    for len in 0..bytes.len() {
        std::fs::write(&probe, &bytes[..len]).unwrap();
        expect_err(&format!("truncated to {len} bytes"), &["probe.npz"], || {
            StateDict::<f32>::load(&probe)
        });
    }
    // A flipped bit may land where nothing checks it (a timestamp, a file name), so only "no
    // panic" and "no silently wrong values" are required: an entry that loads under a name of
    // the original holds the original's values (the CRC of every entry is checked).
    for at in 0..bytes.len() {
        for bit in [0x01u8, 0x10, 0x80] {
            let mut b = bytes.clone();
            b[at] ^= bit;
            std::fs::write(&probe, &b).unwrap();
            match catch_unwind(|| StateDict::<f32>::load(&probe)) {
                Err(_) => panic!("flipping bit {bit:#x} of byte {at} makes the load panic"),
                Ok(Ok(back)) => {
                    if back.names().any(|n| n == "w") {
                        assert_eq!(
                            back.tensor("w").unwrap(),
                            sd.tensor("w").unwrap(),
                            "byte {at}"
                        );
                    }
                    if back.names().any(|n| n == "t") {
                        assert_eq!(back.int("t").unwrap(), sd.int("t").unwrap(), "byte {at}");
                    }
                }
                Ok(Err(_)) => {}
            }
        }
    }
}

/// An archive holding one raw `.npy` entry, written with the zip writer itself so that the
/// header can say anything.
fn raw_npz(dir: &Path, tag: &str, name: &str, npy: &[u8], stored: bool) -> PathBuf {
    let path = dir.join(format!("{tag}.npz"));
    let mut z = npyz::zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let mut opts = npyz::zip::write::FileOptions::default();
    if stored {
        opts = opts.compression_method(npyz::zip::CompressionMethod::Stored);
    }
    z.start_file(format!("{name}.npy"), opts).unwrap();
    z.write_all(npy).unwrap();
    z.finish().unwrap();
    path
}

/// A version-1 `.npy` stream with `header` (padded as NumPy pads it) and `data`.
fn npy(header: &str, data: &[u8]) -> Vec<u8> {
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

fn f4_header(shape: &str) -> String {
    format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
}

#[test]
fn bad_npy_headers_inside_checkpoints() {
    let d = scratch("ckpt-headers");
    let w = "stem.conv.weight";
    let wrapped = raw_npz(
        &d,
        "wrapped",
        w,
        &npy(&f4_header("(2147483648, 2147483648, 4)"), &[]),
        false,
    );
    load_case(
        "wrapped-shape",
        &wrapped,
        &[w, "shape [2147483648, 2147483648, 4] overflows"],
    );
    let huge = raw_npz(
        &d,
        "huge",
        w,
        &npy(&f4_header("(1048576, 1048576)"), &[0; 16]),
        false,
    );
    load_case(
        "huge-shape",
        &huge,
        &[w, "truncated", "4398046511104 bytes"],
    );
    let short = raw_npz(&d, "short", w, &npy(&f4_header("(3, 4)"), &[0; 20]), true);
    load_case(
        "short-data",
        &short,
        &[
            w,
            "truncated: shape [3, 4] of <f4 needs 48 bytes of data, the archive entry holds 20",
        ],
    );
    let long = raw_npz(&d, "long", w, &npy(&f4_header("(1,)"), &[0; 12]), false);
    load_case("long-data", &long, &[w, "8 trailing bytes"]);
    let mut big_header = b"\x93NUMPY\x02\x00".to_vec();
    big_header.extend(u32::MAX.to_le_bytes());
    let claim = raw_npz(&d, "claim", w, &big_header, false);
    load_case(
        "header-length",
        &claim,
        &[
            w,
            "header claims 4294967295 bytes, more than the 65536 accepted",
        ],
    );
    let not_npy = raw_npz(&d, "notnpy", w, b"just some bytes, no magic", true);
    load_case("not-npy", &not_npy, &[w, "not a .npy array"]);
    let dtype = raw_npz(
        &d,
        "dtype",
        w,
        &npy(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        ),
        true,
    );
    load_case(
        "complex-dtype",
        &dtype,
        &[w, "dtype '<c8' is not supported"],
    );
    let i64s: Vec<u8> = [5i64, 1 << 33]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let wide = raw_npz(
        &d,
        "wide-int",
        "stem.pad_hv",
        &npy(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &i64s,
        ),
        false,
    );
    load_case(
        "int64-range",
        &wide,
        &["stem.pad_hv: value 8589934592 at element 1 does not fit in int32"],
    );
}

/// Overwrites the uncompressed size in the (only) central-directory record of `path`.
fn patch_declared_size(path: &Path, size: u32) {
    let mut b = std::fs::read(path).unwrap();
    let at = b
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central directory record");
    b[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn archive_entries_that_lie_about_their_size() {
    let d = scratch("ckpt-sizes");
    let w = "head.bias";
    let body = npy(&f4_header("(4,)"), &[0; 16]);
    // A deflated entry claiming 4 GiB from a hundred compressed bytes: a zip bomb's signature.
    let bomb = raw_npz(&d, "bomb", w, &body, false);
    patch_declared_size(&bomb, 0xFFFF_0000);
    load_case(
        "deflate-bomb",
        &bomb,
        &[w, "more than its compression can produce"],
    );
    // A stored entry claiming more bytes than it stores.
    let stored = raw_npz(&d, "stored", w, &body, true);
    patch_declared_size(&stored, body.len() as u32 + 100);
    load_case(
        "stored-overclaim",
        &stored,
        &[w, "more than its compression can produce"],
    );
    // Claiming fewer bytes than the header and data need.
    let under = raw_npz(&d, "under", w, &body, true);
    patch_declared_size(&under, body.len() as u32 - 4);
    load_case(
        "underclaim",
        &under,
        &[w, "truncated", "needs 16 bytes", "holds 12"],
    );
}

#[test]
fn checkpoints_that_disagree_with_the_model() {
    let d = scratch("ckpt-model");
    let (_, sd) = good_checkpoint(&d);
    let mut wrong = sd.clone();
    wrong
        .insert("stem.conv.weight".into(), Tensor::zeros([1, 1, 1, 1]))
        .unwrap();
    let path = d.join("shape.npz");
    wrong.save(&path).unwrap();
    model_case(
        "shape",
        &path,
        &["stem.conv.weight has shape [1, 1, 1, 1], the model expects [8, 1, 3, 3]"],
    );

    let tables = "stages.0.blocks.0.spatial";
    let (pad_shape, pad) = {
        let (s, v) = sd.int(&format!("{tables}.pad_hv")).unwrap();
        (s.dims().to_vec(), v.to_vec())
    };
    // A shift that is not one of the layer's shifts.
    let mut bad = pad.clone();
    bad[0] = 9999;
    let path = with_int(
        &d,
        "pad-value",
        &sd,
        &format!("{tables}.pad_hv"),
        &pad_shape,
        bad,
    );
    model_case("pad_hv value", &path, &[tables, "pad_hv[0, 0] = 9999"]);
    // The right number of elements in the wrong shape.
    let flat = [pad.len()];
    let path = with_int(
        &d,
        "pad-shape",
        &sd,
        &format!("{tables}.pad_hv"),
        &flat,
        pad.clone(),
    );
    model_case(
        "pad_hv shape",
        &path,
        &[&format!("{tables}.pad_hv has shape")],
    );
    // An identity index outside its rep block, and a negative one.
    let (idx_shape, idx) = {
        let (s, v) = sd.int(&format!("{tables}.idx_identit")).unwrap();
        (s.dims().to_vec(), v.to_vec())
    };
    for (tag, value) in [("idx-far", 1_000_000), ("idx-negative", -1)] {
        let mut bad = idx.clone();
        bad[0] = value;
        let path = with_int(
            &d,
            tag,
            &sd,
            &format!("{tables}.idx_identit"),
            &idx_shape,
            bad,
        );
        model_case(
            tag,
            &path,
            &[tables, &format!("idx_identit[0, 0] = {value}")],
        );
    }
    // Channel lists that do not partition the input.
    let (rep_shape, rep) = {
        let (s, v) = sd.int(&format!("{tables}.rep_idx")).unwrap();
        (s.dims().to_vec(), v.to_vec())
    };
    let mut bad = rep.clone();
    bad[0] = 77;
    let path = with_int(
        &d,
        "rep-idx",
        &sd,
        &format!("{tables}.rep_idx"),
        &rep_shape,
        bad,
    );
    model_case(
        "rep_idx",
        &path,
        &[&format!("{tables}.rep_idx is not a valid channel list")],
    );
    // A float array where the model wants integers, and a missing entry.
    let mut swapped = sd.clone();
    swapped
        .insert(
            format!("{tables}.pad_hv"),
            Tensor::zeros(pad_shape.as_slice()),
        )
        .unwrap();
    let path = d.join("float-table.npz");
    swapped.save(&path).unwrap();
    model_case(
        "float table",
        &path,
        &["pad_hv holds floats, expected integers"],
    );
}

/// `sd` with the int entry `name` replaced, saved as `<tag>.npz`.
fn with_int(
    dir: &Path,
    tag: &str,
    sd: &StateDict<f32>,
    name: &str,
    shape: &[usize],
    data: Vec<i32>,
) -> PathBuf {
    let mut sd = sd.clone();
    sd.insert_int(name.to_string(), shape, data);
    let path = dir.join(format!("{tag}.npz"));
    sd.save(&path).unwrap();
    path
}

#[test]
fn npz_writer_files_are_what_the_reader_accepts() {
    // The writer and the reader agree on f32, f64 and int32 arrays of every rank used.
    let d = scratch("writer");
    let path = d.join("mixed.npz");
    let mut w = NpzWriter::create(&path).unwrap();
    w.tensor("scalar", &Tensor::<f64>::scalar(2.5)).unwrap();
    w.tensor("empty", &Tensor::<f32>::zeros([0, 3])).unwrap();
    w.int32("ints", &[2, 1, 2], &[1, 2, 3, 4]).unwrap();
    w.finish().unwrap();
    let sd = StateDict::<f64>::load(&path).unwrap();
    assert_eq!(sd.tensor("scalar").unwrap().data(), &[2.5]);
    assert_eq!(sd.tensor("empty").unwrap().dims(), &[0, 3]);
    assert_eq!(sd.int("ints").unwrap().1, &[1, 2, 3, 4]);
}
