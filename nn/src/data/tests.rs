use super::*;
use shiftgrad_tensor::init;

fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(payload);
    v
}

fn write_set(dir: &Path, gz: bool) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let images: Vec<u8> = (0..3 * 4 * 4).map(|i| i as u8).collect();
    let files = [
        (
            "train-images-idx3-ubyte",
            idx_bytes(0x803, &[3, 4, 4], &images),
        ),
        (
            "train-labels-idx1-ubyte",
            idx_bytes(0x801, &[3], &[1, 2, 9]),
        ),
    ];
    for (name, bytes) in files {
        if gz {
            let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn tmp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("shiftgrad-data-{tag}-{}", std::process::id()))
}

#[test]
fn reads_raw_and_gz() {
    for gz in [false, true] {
        let d = tmp(&format!("ok{gz}"));
        write_set(&d, gz);
        let ds = load(&d, Split::Train).unwrap();
        assert_eq!((ds.len(), ds.rows, ds.cols), (3, 4, 4));
        assert_eq!(ds.labels, vec![1, 2, 9]);
        assert_eq!(ds.images[17], 17);
    }
}

#[test]
fn errors_name_the_file() {
    let e = load(&tmp("nowhere"), Split::Train).unwrap_err().to_string();
    assert!(e.contains("data directory not found"), "{e}");
    let d = tmp("badmagic");
    write_set(&d, false);
    std::fs::write(
        d.join("train-labels-idx1-ubyte"),
        idx_bytes(0x803, &[3], &[1, 2, 3]),
    )
    .unwrap();
    let e = load(&d, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("train-labels-idx1-ubyte") && e.contains("wrong magic number"),
        "{e}"
    );
    let d = tmp("trunc");
    write_set(&d, false);
    std::fs::write(
        d.join("train-images-idx3-ubyte"),
        idx_bytes(0x803, &[3, 4, 4], &[0; 20]),
    )
    .unwrap();
    let e = load(&d, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    let e = load(&d, Split::Test).unwrap_err().to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn idx_headers_are_checked() {
    let p = Path::new("x-idx3-ubyte");
    let parse = |bytes: &[u8]| parse_idx(p, bytes, IMAGES_MAGIC, 3);
    let ok = idx_bytes(0x803, &[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(parse(&ok).unwrap(), (vec![2, 1, 3], vec![1, 2, 3, 4, 5, 6]));
    let err = |bytes: &[u8]| parse(bytes).unwrap_err().to_string();
    // 2^31 * 2^31 * 4 wraps to 0: an empty payload must not "fit".
    let e = err(&idx_bytes(0x803, &[1 << 31, 1 << 31, 4], &[]));
    assert!(e.contains("x-idx3-ubyte") && e.contains("overflow"), "{e}");
    let e = err(&idx_bytes(0x803, &[2, 1, 3], &[0; 7]));
    assert!(e.contains("1 trailing bytes"), "{e}");
    let e = err(&idx_bytes(0x803, &[2, 1, 3], &[0; 5]));
    assert!(e.contains("truncated"), "{e}");
    let e = err(&idx_bytes(0x802, &[2, 3], &[0; 6]));
    assert!(e.contains("2 dimensions, expected 3"), "{e}");
    let e = err(&idx_bytes(0x0b03, &[2, 1, 3], &[0; 12]));
    assert!(e.contains("element type 0x0b"), "{e}");
    let e = err(&[0, 0, 8]);
    assert!(e.contains("truncated IDX header"), "{e}");
}

#[test]
fn a_gzip_header_cannot_promise_more_than_the_file_can_hold() {
    use std::io::Write;
    let d = tmp("gzbound");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("big-idx1-ubyte.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&idx_bytes(0x801, &[u32::MAX], &[0; 10]))
        .unwrap();
    let gz = e.finish().unwrap();
    std::fs::write(&p, &gz).unwrap();
    let e = read_idx(&p, LABELS_MAGIC, 1).unwrap_err().to_string();
    assert!(
        e.contains("more than a gzip file of this size can hold"),
        "{e}"
    );
}

#[test]
fn an_endless_stream_is_read_one_byte_past_the_promise() {
    // A decompressor that never stops (a gzip bomb, modelled as endless zeros): the
    // payload is read through `take`, so this returns instead of filling memory.
    let header = idx_bytes(0x801, &[3], &[]);
    let endless = (&header[..]).chain(std::io::repeat(0));
    let e = parse_idx_stream(
        Path::new("bomb"),
        endless,
        Bound::AtMost(u64::MAX),
        0x801,
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("trailing bytes after the 3 bytes"), "{e}");
}

#[test]
fn batch_checks_a_hand_built_dataset() {
    let ds = Dataset {
        images: vec![0; 10],
        labels: vec![0, 1],
        rows: 4,
        cols: 4,
    };
    let e = batch::<f32>(&ds, &[0], None, &mut init::rng(0)).unwrap_err();
    assert!(e.to_string().contains("outside the 10 image bytes"), "{e}");
}

#[test]
fn batches_are_normalised_and_augmentation_is_seeded() {
    let d = tmp("batch");
    write_set(&d, false);
    let ds = load(&d, Split::Train).unwrap();
    let (x, y) = batch::<f32>(&ds, &[2, 0], None, &mut init::rng(0)).unwrap();
    assert_eq!(x.dims(), &[2, 1, 4, 4]);
    assert_eq!(y, vec![9, 1]);
    let expect = (32.0 / 255.0 - MEAN) / STD;
    assert!((x.data()[0] as f64 - expect).abs() < 1e-6);
    let aug = Some(Augment { pad: 2, flip: true });
    let a = batch::<f32>(&ds, &[0, 1, 2], aug, &mut init::rng(5))
        .unwrap()
        .0;
    let b = batch::<f32>(&ds, &[0, 1, 2], aug, &mut init::rng(5))
        .unwrap()
        .0;
    assert_eq!(a, b);
    assert!(batch::<f32>(&ds, &[3], None, &mut init::rng(0)).is_err());
}
