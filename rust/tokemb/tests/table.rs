//! Tests of the safe wrapper against golden values computed with torch 1.13 (torch.manual_seed(s) then
//! normal_/uniform_ on a float32 tensor; the bit patterns below were printed by torch), and of the
//! error paths: lengths checked before the call, library errors carry code and message, failed calls
//! change nothing.
use tokemb::{sys, Dtype, ErrorKind, Table};

const SEED123_6X3: [u32; 18] = [
    0x3eacbbc9, 0xbe360b3b, 0xbe2d02e0, 0x3f6af29f, 0x3fca5d36, 0x3fa6887a, 0x3fa33d12, 0xbe4dc6a6, 0xbe246ad5,
    0xbecd8fd6, 0x3f77713c, 0xbf92f662, 0xbf9455c8, 0x3ea6a423, 0xbf21aa56, 0xc035c276, 0xbf48ec26, 0xbfb46cdf,
];
// torch.manual_seed(7); torch.empty(4, 5).uniform_(-0.5, 0.5)
const SEED7_UNIFORM_4X5: [u32; 20] = [
    0x3d0f0af0, 0xbe9a3678, 0x3e230864, 0x3e20a7d8, 0xbe88d37a, 0xbd997968, 0xbe95f8d2, 0x3e04d99c, 0xbe09ea90,
    0x3eb3d972, 0x3eb5bb1c, 0x3d50a170, 0xbe5a46e0, 0xbe965d4e, 0xbd60e920, 0xbe101758, 0x3e61ab68, 0xbeda98f0,
    0x3ef0994e, 0xbec8d034,
];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn version_matches_header() {
    assert_eq!(tokemb::version_number(), sys::TOKEMB_VERSION_NUMBER);
    assert_eq!(tokemb::version_string(), sys::TOKEMB_VERSION_STRING);
}

#[test]
fn seed_walkthrough_bits() {
    let mut t = Table::new(6, 3, Dtype::F32).unwrap();
    t.init_normal(123, 0.0, 1.0).unwrap();
    assert_eq!(bits(t.as_slice().unwrap()), SEED123_6X3.to_vec());
    let out = t.lookup_vec(&[2, 3, 5, 1]).unwrap();
    let want: Vec<u32> = [2usize, 3, 5, 1].iter().flat_map(|&r| SEED123_6X3[r * 3..r * 3 + 3].to_vec()).collect();
    assert_eq!(bits(&out), want);
    let mut oh = vec![0f32; 12];
    t.lookup_onehot(&[2, 3, 5, 1], &mut oh).unwrap();
    assert_eq!(bits(&oh), want);
    let mut o32 = vec![0f32; 12];
    t.lookup_i32(&[2, 3, 5, 1], &mut o32).unwrap();
    assert_eq!(bits(&o32), want);
}

#[test]
fn uniform_into_wrapped_strided_slice() {
    // a 4 x 5 table living in the first 5 columns of a 4 x 7 buffer
    let mut buf = vec![9f32; 28];
    {
        let mut t = Table::wrap(&mut buf, 4, 5, 7).unwrap();
        assert_eq!((t.rows(), t.dim(), t.row_stride()), (4, 5, 7));
        t.init_uniform(7, -0.5, 0.5).unwrap();
        assert_eq!(bits(&t.to_vec().unwrap()), SEED7_UNIFORM_4X5.to_vec());
    }
    for r in 0..4 {
        assert_eq!(bits(&buf[r * 7..r * 7 + 5]), SEED7_UNIFORM_4X5[r * 5..r * 5 + 5].to_vec());
        assert_eq!(&buf[r * 7 + 5..r * 7 + 7], &[9.0, 9.0]); // padding untouched
    }
}

#[test]
fn errors_carry_code_and_message_and_change_nothing() {
    let mut t = Table::new(6, 3, Dtype::F32).unwrap();
    t.init_normal(123, 0.0, 1.0).unwrap();
    let mut out = vec![-1f32; 6];
    let e = t.lookup(&[1, 6], &mut out).unwrap_err();
    assert_eq!(e.code, sys::TOKEMB_OUT_OF_RANGE);
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert!(e.message.contains("token id 6 at index 1"), "{}", e.message);
    assert!(format!("{e}").contains("outside [0, 6)"));
    assert_eq!(out, vec![-1f32; 6]);
    // length mismatch caught by the wrapper before calling the library
    let e = t.lookup(&[1, 2], &mut out[..5]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message.contains("5 elements, expected 6"), "{}", e.message);
    // bad parameters
    assert_eq!(t.set_padding_idx(Some(6)).unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(t.padding_idx(), None);
    t.set_padding_idx(Some(-1)).unwrap();
    assert_eq!(t.padding_idx(), Some(5));
    assert_eq!(t.init_normal(1, 0.0, -1.0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(bits(&t.as_slice().unwrap()[..3]), SEED123_6X3[..3].to_vec());
    assert_eq!(Table::new(0, 3, Dtype::F32).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut small = vec![0f32; 5];
    assert_eq!(Table::wrap(&mut small, 2, 3, 3).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn readonly_wrap_refuses_writes() {
    let data = vec![1f32; 6];
    let mut t = Table::wrap_readonly(&data, 2, 3, 3).unwrap();
    assert_eq!(t.init_normal(1, 0.0, 1.0).unwrap_err().kind(), ErrorKind::ReadOnly);
    assert_eq!(t.write_rows(0, &[0.0; 3]).unwrap_err().kind(), ErrorKind::ReadOnly);
    assert!(t.as_mut_slice().is_none());
    assert_eq!(t.lookup_vec(&[1]).unwrap(), vec![1.0; 3]);
    assert_eq!(data, vec![1f32; 6]);
}

#[test]
fn max_norm_lookup_needs_exclusive_access() {
    let mut t = Table::from_slice(&[3.0, 4.0, 0.3, 0.4], 2, 2).unwrap();
    t.set_max_norm(Some(1.0)).unwrap();
    let mut out = vec![0f32; 4];
    assert_eq!(t.lookup(&[0, 1], &mut out).unwrap_err().kind(), ErrorKind::InvalidArgument);
    t.lookup_mut(&[0, 1], &mut out).unwrap();
    // torch: row * float32(max_norm / (norm + 1e-7)) with norm 5
    let s = (1.0f64 / (5.0 + 1e-7)) as f32;
    assert_eq!(bits(&out), bits(&[3.0 * s, 4.0 * s, 0.3, 0.4]));
    assert_eq!(bits(&t.to_vec().unwrap()[..2]), bits(&[3.0 * s, 4.0 * s]));
}

#[test]
fn shared_reads_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Table<'static>>();
    let mut t = Table::new(1000, 16, Dtype::F32).unwrap();
    t.init_normal(5, 0.0, 1.0).unwrap();
    let ids: Vec<i64> = (0..4096).map(|i| (i * 7919) % 1000).collect();
    let want = t.lookup_vec(&ids).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(t.lookup_vec(&ids).unwrap(), want));
        }
    });
    // an error on one thread does not leak into another (thread-local text)
    let msg = std::thread::spawn(|| {
        let t = Table::new(2, 2, Dtype::F32).unwrap();
        t.lookup_vec(&[5]).unwrap_err().message
    })
    .join()
    .unwrap();
    assert!(msg.contains("token id 5"));
}

#[test]
fn normal_shard_equals_rows_of_the_full_init() {
    // round-robin rows 1, 4, 7, ... and a column slice of a [37, 21] table: the full init's values
    let mut full = Table::new(37, 21, Dtype::F32).unwrap();
    full.init_normal(2024, 0.0, 1.0).unwrap();
    let f = full.to_vec().unwrap();
    let mut s = Table::new(12, 21, Dtype::F32).unwrap();
    s.init_normal_shard(2024, 0.0, 1.0, 37, 21, 1, 3, 0).unwrap();
    let v = s.to_vec().unwrap();
    for l in 0..12 {
        let g = 1 + 3 * l;
        assert_eq!(bits(&v[l * 21..l * 21 + 21]), bits(&f[g * 21..g * 21 + 21]));
    }
    let mut c = Table::new(37, 5, Dtype::F32).unwrap();
    c.init_normal_shard(2024, 0.0, 1.0, 37, 21, 0, 1, 16).unwrap();
    let v = c.to_vec().unwrap();
    for g in 0..37 {
        assert_eq!(bits(&v[g * 5..g * 5 + 5]), bits(&f[g * 21 + 16..g * 21 + 21]));
    }
    // the last row passes the global table: an error naming it, the table untouched
    assert!(s.init_normal_shard(2024, 0.0, 1.0, 37, 21, 4, 3, 0).is_err());
    assert_eq!(bits(&s.to_vec().unwrap()), bits(&{
        let mut w = vec![0f32; 12 * 21];
        for l in 0..12 {
            w[l * 21..l * 21 + 21].copy_from_slice(&f[(1 + 3 * l) * 21..(1 + 3 * l) * 21 + 21]);
        }
        w
    }));
}
