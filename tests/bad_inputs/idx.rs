//! IDX files for the data loader: truncated, wrapped, mislabelled, inconsistent, trailing.

use super::*;

const IMAGES: &str = "train-images-idx3-ubyte";
const LABELS: &str = "train-labels-idx1-ubyte";

fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(payload);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn good_images() -> Vec<u8> {
    idx(0x803, &[3, 4, 4], &(0..48).collect::<Vec<u8>>())
}

fn good_labels() -> Vec<u8> {
    idx(0x801, &[3], &[1, 2, 9])
}

/// A training split of `images` and `labels`, each written raw or as `.gz`.
fn split_dir(tag: &str, images: (&[u8], bool), labels: (&[u8], bool)) -> PathBuf {
    let d = scratch(tag);
    for (name, (bytes, gz)) in [(IMAGES, images), (LABELS, labels)] {
        if gz {
            std::fs::write(d.join(format!("{name}.gz")), gzip(bytes)).unwrap();
        } else {
            std::fs::write(d.join(name), bytes).unwrap();
        }
    }
    d
}

/// Loading the training split of a directory holding `images` and `labels` fails with all of
/// `want` in the message.
fn idx_case(tag: &str, images: (&[u8], bool), labels: (&[u8], bool), want: &[&str]) {
    let d = split_dir(tag, images, labels);
    expect_err(tag, want, || data::load(&d, Split::Train));
}

#[test]
fn the_good_split_loads_raw_and_gzipped() {
    for gz in [false, true] {
        let d = split_dir(
            &format!("good-{gz}"),
            (&good_images(), gz),
            (&good_labels(), gz),
        );
        let ds = data::load(&d, Split::Train).unwrap();
        assert_eq!((ds.len(), ds.rows, ds.cols), (3, 4, 4));
        assert_eq!(ds.labels, [1, 2, 9]);
    }
}

#[test]
fn truncated_idx_files() {
    let short = idx(0x803, &[3, 4, 4], &[0; 40]);
    // A raw file is refused from its length alone, a gzip stream when it ends.
    for (gz, holds) in [(false, "file holds 40"), (true, "the stream ends after 40")] {
        idx_case(
            &format!("truncated-data-{gz}"),
            (&short, gz),
            (&good_labels(), false),
            &[IMAGES, "truncated", "48 bytes", "[3, 4, 4]", holds],
        );
    }
    idx_case(
        "truncated-header",
        (&good_images()[..9], false),
        (&good_labels(), false),
        &[IMAGES, "truncated IDX header"],
    );
    idx_case(
        "empty-file",
        (&[], false),
        (&good_labels(), false),
        &[IMAGES, "truncated IDX header"],
    );
    // A gzip file cut short is a broken gzip stream, not a short IDX file.
    let gz = gzip(&good_images());
    let d = scratch("truncated-gzip");
    std::fs::write(d.join(format!("{IMAGES}.gz")), &gz[..gz.len() - 12]).unwrap();
    std::fs::write(d.join(LABELS), good_labels()).unwrap();
    expect_err("truncated-gzip", &[IMAGES, "gzip"], || {
        data::load(&d, Split::Train)
    });
}

#[test]
fn wrapped_and_huge_dimensions() {
    // 2^31 * 2^31 * 4 = 2^64: an unchecked product wraps to 0 and the empty payload "fits".
    let wrapped = idx(0x803, &[1 << 31, 1 << 31, 4], &[]);
    for gz in [false, true] {
        idx_case(
            &format!("wrapped-{gz}"),
            (&wrapped, gz),
            (&good_labels(), false),
            &[IMAGES, "overflow", "[2147483648, 2147483648, 4]"],
        );
    }
    let all_max = idx(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[]);
    idx_case(
        "max-dims",
        (&all_max, false),
        (&good_labels(), false),
        &[IMAGES, "overflow"],
    );
    // 65536^3 = 2^48 bytes fits in usize but not in the file: refused before any allocation.
    let huge = idx(0x803, &[65536, 65536, 65536], &[0; 64]);
    idx_case(
        "huge-raw",
        (&huge, false),
        (&good_labels(), false),
        &[IMAGES, "truncated", "281474976710656 bytes"],
    );
    idx_case(
        "huge-gz",
        (&huge, true),
        (&good_labels(), false),
        &[IMAGES, "more than a gzip file of this size can hold"],
    );
}

#[test]
fn wrong_magic_numbers() {
    let labels_as_images = good_labels();
    idx_case(
        "labels-as-images",
        (&labels_as_images, false),
        (&good_labels(), false),
        &[
            IMAGES,
            "wrong magic number 0x00000801",
            "1 dimensions, expected 3",
        ],
    );
    let floats = idx(0x0d03, &[3, 4, 4], &[0; 48]);
    idx_case(
        "float-images",
        (&floats, false),
        (&good_labels(), false),
        &[IMAGES, "element type 0x0d"],
    );
    idx_case(
        "not-idx",
        (&good_images(), false),
        (b"PK\x03\x04 a zip, not IDX", false),
        &[LABELS, "wrong magic number", "not an IDX file"],
    );
}

#[test]
fn inconsistent_splits() {
    idx_case(
        "count-mismatch",
        (&good_images(), false),
        (&idx(0x801, &[2], &[1, 2]), false),
        &[LABELS, "2 labels for 3 images"],
    );
    idx_case(
        "label-out-of-range",
        (&good_images(), true),
        (&idx(0x801, &[3], &[1, 10, 2]), true),
        &[LABELS, "label 10 at index 1 out of range 0..10"],
    );
    idx_case(
        "zero-images",
        (&idx(0x803, &[0, 28, 28], &[]), false),
        (&idx(0x801, &[0], &[]), false),
        &[IMAGES, "holds no images"],
    );
    idx_case(
        "zero-pixels",
        (&idx(0x803, &[3, 0, 28], &[]), false),
        (&good_labels(), false),
        &[IMAGES, "hold no pixels"],
    );
}

#[test]
fn trailing_bytes_and_lying_gzip_streams() {
    let mut padded = good_images();
    padded.extend(b"garbage");
    idx_case(
        "trailing-raw",
        (&padded, false),
        (&good_labels(), false),
        &[IMAGES, "7 trailing bytes"],
    );
    // The gzip stream is valid, but its content says 3 labels and holds 5, or holds 2.
    idx_case(
        "gz-longer-than-header",
        (&good_images(), false),
        (&idx(0x801, &[3], &[1, 2, 3, 4, 5]), true),
        &[LABELS, "trailing bytes"],
    );
    idx_case(
        "gz-shorter-than-header",
        (&good_images(), false),
        (&idx(0x801, &[3], &[1, 2]), true),
        &[LABELS, "truncated", "the stream ends after 2"],
    );
    // A small header followed by 16 MiB of zeros (a 16 KiB gzip file): reading stops one byte
    // past the promised 48, so the bomb is never inflated.
    let mut bomb = good_images();
    bomb.resize(bomb.len() + (16 << 20), 0);
    idx_case(
        "gz-bomb",
        (&bomb, true),
        (&good_labels(), false),
        &[IMAGES, "trailing bytes after the 48 bytes"],
    );
}

#[test]
fn the_installed_dataset_still_loads() {
    // The checks must not reject the real files (skipped where Fashion-MNIST is not installed,
    // unless SHIFTGRAD_REQUIRE_DATA is set).
    let dir = data::data_dir(None);
    if !dir.is_dir() {
        assert!(
            std::env::var_os("SHIFTGRAD_REQUIRE_DATA").is_none(),
            "SHIFTGRAD_REQUIRE_DATA is set but Fashion-MNIST is not at {}",
            dir.display()
        );
        eprintln!("skipping: Fashion-MNIST not found at {}", dir.display());
        return;
    }
    for (split, n) in [(Split::Test, 10_000), (Split::Train, 60_000)] {
        let ds = data::load(&dir, split).unwrap();
        assert_eq!((ds.len(), ds.rows, ds.cols), (n, 28, 28));
        assert_eq!(ds.images.len(), n * 28 * 28);
    }
}
