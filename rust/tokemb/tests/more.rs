//! Training, positional encoders, files and neighbours through the safe wrapper. References are
//! computed here: input-order float32 sums (what the library documents for gradients and bags),
//! float64 formulas (sinusoidal, logits, cosine ranking), the ALiBi slope rule, round trips.
use tokemb::*;

fn table(rows: i64, dim: i64, seed: u64) -> Table<'static> {
    let mut t = Table::new(rows, dim, Dtype::F32).unwrap();
    t.init_normal(seed, 0.0, 1.0).unwrap();
    t
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tokemb-rs-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn grads_are_input_order_sums_and_coalesce_agrees() {
    let mut t = table(7, 3, 1);
    t.set_padding_idx(Some(4)).unwrap();
    let ids = [2i64, 4, 2, 6, 0, 2];
    let g: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut gt = vec![0f32; 21];
    t.grad_accumulate(&ids, &g, &mut gt).unwrap();
    let mut want = vec![0f32; 21];
    for (i, &id) in ids.iter().enumerate() {
        if id != 4 {
            for c in 0..3 {
                want[id as usize * 3 + c] += g[i * 3 + c];
            }
        }
    }
    assert_eq!(gt, want);
    let mut g32 = vec![0f32; 21];
    t.grad_accumulate_i32(&[2, 4, 2, 6, 0, 2], &g, &mut g32).unwrap();
    assert_eq!(g32, want);
    let (u, rows) = t.grad_coalesce(&ids, &g).unwrap();
    assert_eq!(u, vec![0, 2, 6]);
    assert_eq!(rows, [&want[0..3], &want[6..9], &want[18..21]].concat());
    let mut oh = vec![0f32; 21];
    t.lookup_onehot_backward(&ids, &g, &mut oh).unwrap();
    for (a, b) in oh.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6, "{a} {b}");
    }
    let e = t.grad_accumulate(&ids, &g[..17], &mut gt).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t.grad_accumulate(&[7], &g[..3], &mut gt).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert!(e.message.contains("7"));
}

#[test]
fn bags_and_their_backward() {
    let t = table(6, 2, 2);
    let w = t.to_vec().unwrap();
    let ids = [1i64, 3, 3, 5, 0];
    let offs = [0i64, 2, 2, 5];
    let mut out = vec![0f32; 6];
    t.lookup_bags(&ids, &offs, BagMode::Sum, None, &mut out).unwrap();
    let row = |r: i64, c: usize| w[r as usize * 2 + c];
    for c in 0..2 {
        assert_eq!(out[c], 0.0 + row(1, c) + row(3, c));
        assert_eq!(out[2 + c], 0.0);
        assert_eq!(out[4 + c], 0.0 + row(3, c) + row(5, c) + row(0, c));
    }
    t.lookup_bags(&ids, &offs, BagMode::Max, None, &mut out).unwrap();
    assert_eq!(out[0], row(1, 0).max(row(3, 0)));
    let e = t.lookup_bags(&ids, &[0, 3, 2, 5], BagMode::Sum, None, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let go = [1f32, 2., 3., 4., 5., 6.];
    let mut gt = vec![0f32; 12];
    let psw = [1f32, 0.5, 2.0, 1.0, 1.0];
    let mut gpsw = vec![0f32; 5];
    t.lookup_bags_backward(&ids, &offs, BagMode::Sum, Some(&psw), &go, &mut gt, Some(&mut gpsw)).unwrap();
    assert_eq!(&gt[2..4], &[1.0, 2.0]); // id 1, weight 1, bag 0
    assert_eq!(&gt[6..8], &[0.5f32 * 1.0 + 2.0 * 5.0, 0.5f32 * 2.0 + 2.0 * 6.0]);
    let dot = |r: i64, b: usize| (row(r, 0) as f64 * go[2 * b] as f64 + row(r, 1) as f64 * go[2 * b + 1] as f64) as f32;
    assert!((gpsw[0] - dot(1, 0)).abs() < 1e-6 && (gpsw[4] - dot(0, 2)).abs() < 1e-6);
}

#[test]
fn optimizer_and_logits() {
    let mut t = Table::from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2).unwrap();
    assert_eq!(t.optim_step_count(), None);
    t.optim_select(Optimizer::Sgd).unwrap();
    t.optim_set(sys::TOKEMB_OPTIM_LR, 0.5).unwrap();
    assert_eq!(t.optim_get(sys::TOKEMB_OPTIM_LR).unwrap(), 0.5);
    t.optim_step(&[2, 2], &[1.0, 1.0, 1.0, 3.0]).unwrap();
    assert_eq!(t.optim_step_count(), Some(1));
    assert_eq!(t.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 4.0, 4.0]);
    t.optim_step_coalesced(&[0], &[2.0, 2.0]).unwrap();
    assert_eq!(&t.to_vec().unwrap()[..2], &[0.0, 1.0]);
    t.set_param(sys::TOKEMB_FROZEN, 1).unwrap();
    assert_eq!(t.optim_step(&[1], &[1.0, 1.0]).unwrap_err().kind(), ErrorKind::ReadOnly);
    let hidden = [1.0f32, -1.0, 0.5, 2.0];
    let mut lg = vec![0f32; 6];
    t.logits(&hidden, &mut lg).unwrap();
    let w = t.to_vec().unwrap();
    for n in 0..2 {
        for r in 0..3 {
            let want = hidden[n * 2] as f64 * w[r * 2] as f64 + hidden[n * 2 + 1] as f64 * w[r * 2 + 1] as f64;
            assert!((lg[n * 3 + r] as f64 - want).abs() < 1e-5);
        }
    }
    let mut gh = vec![0f32; 4];
    let mut gtab = vec![0f32; 6];
    t.logits_backward(&hidden, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], Some(&mut gh), Some(&mut gtab)).unwrap();
    assert_eq!(gh, vec![w[0], w[1], w[2], w[3]]);
    assert_eq!(gtab, vec![1.0, -1.0, 0.5, 2.0, 0.0, 0.0]);
    assert_eq!(t.logits(&hidden[..3], &mut lg).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn positional_encoders() {
    let pe = PosEnc::sinusoidal(16, 10000.0, SinusoidalLayout::Interleaved).unwrap();
    assert_eq!(pe.dim(), 16);
    let mut out = vec![0f32; 32];
    pe.encode(&[3, 1000], &mut out).unwrap();
    for (k, p) in [3f64, 1000.0].iter().enumerate() {
        for c in 0..16 {
            let a = p / 10000f64.powf((2 * (c / 2)) as f64 / 16.0);
            let want = if c % 2 == 0 { a.sin() } else { a.cos() } as f32;
            let got = out[k * 16 + c];
            assert!((got - want).abs() <= f32::EPSILON * want.abs().max(1e-30) || got == want, "{c} {got} {want}");
        }
    }
    let mut learned = PosEnc::learned(4, 2).unwrap();
    learned.table_mut().unwrap().write_rows(0, &[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
    let mut o = vec![0f32; 4];
    learned.encode(&[3, 0], &mut o).unwrap();
    assert_eq!(o, vec![7., 8., 1., 2.]);
    assert_eq!(learned.encode(&[4, 0], &mut o).unwrap_err().kind(), ErrorKind::OutOfRange);

    let rope = PosEnc::rope(8, 8, 10000.0, RopeLayout::Neox).unwrap();
    let (f, a) = rope.rope_inv_freq().unwrap();
    assert_eq!(a, 1.0);
    for (i, v) in f.iter().enumerate() {
        assert!((v - 1.0 / 10000f64.powf(2.0 * i as f64 / 8.0)).abs() < 1e-15);
    }
    let x0: Vec<f32> = (0..32).map(|i| i as f32 * 0.1 - 1.0).collect();
    let mut x = x0.clone();
    rope.rope_apply(&mut x, 2, &[0, 5]).unwrap();
    assert_eq!(&x[..16], &x0[..16]); // position 0 is the identity
    rope.rope_apply_backward(&mut x, 2, &[0, 5]).unwrap();
    for (a, b) in x.iter().zip(&x0) {
        assert!((a - b).abs() < 1e-6);
    }
    assert_eq!(rope.rope_apply(&mut x[..31], 2, &[0, 5]).unwrap_err().kind(), ErrorKind::InvalidArgument);

    let alibi = PosEnc::alibi(4).unwrap();
    assert_eq!(alibi.alibi_slopes().unwrap(), vec![0.25, 0.0625, 0.015625, 0.00390625]);
    let mut bias = vec![0f32; 4 * 2 * 3];
    alibi.attn_bias(2, 3, 0, &mut bias).unwrap();
    assert_eq!(bias[3], -0.25); // head 0, query 1, key 0
    assert!(bias[2].is_infinite());

    let mut shaw = PosEnc::shaw(2, 3).unwrap();
    shaw.table_mut().unwrap().init_uniform(1, -1.0, 1.0).unwrap();
    let mut idx = vec![0i32; 2 * 5];
    shaw.buckets(2, 5, 0, &mut idx).unwrap();
    assert_eq!(idx, vec![2, 3, 4, 4, 4, 1, 2, 3, 4, 4]);
    let t5 = PosEnc::t5(2, 32, 128, true).unwrap();
    assert_eq!(t5.table().unwrap().rows(), 32);
    let mut b = vec![0i32; 3];
    t5.buckets(1, 3, 1, &mut b).unwrap();
    assert_eq!(b, vec![1, 0, 17]);

    let tok = table(5, 16, 3);
    let mut e = vec![0f32; 2 * 16];
    embed(&tok, Some(&pe), &[4, 1], 1, 2, 3, 2.0, &mut e).unwrap();
    let mut p = vec![0f32; 32];
    pe.encode(&[3, 4], &mut p).unwrap();
    let w = tok.to_vec().unwrap();
    assert_eq!(e[0], 2.0 * w[4 * 16] + p[0]);
    let mut gtok = vec![0f32; 80];
    embed_backward(&tok, Some(&pe), &[4, 1], 1, 2, 3, 2.0, &vec![1.0; 32], Some(&mut gtok), None).unwrap();
    assert_eq!(gtok[4 * 16], 2.0);
}

#[test]
fn files_vocab_neighbours_and_dtypes() {
    let t = table(6, 4, 7);
    let w = t.to_vec().unwrap();
    let p = tmp("a.npy");
    t.save_npy(&p).unwrap();
    assert_eq!(Table::load_npy(&p).unwrap().to_vec().unwrap(), w);
    let mut m = Table::mmap_npy(&p).unwrap();
    assert_eq!(m.lookup_vec(&[5]).unwrap(), w[20..24].to_vec());
    assert_eq!(m.init_normal(1, 0.0, 1.0).unwrap_err().kind(), ErrorKind::ReadOnly);
    assert!(m.as_mut_slice().is_none());
    let e = Table::load_npy(tmp("missing.npy")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);

    let half = t.convert(Dtype::F16).unwrap();
    assert_eq!(half.dtype(), Dtype::F16);
    assert!(half.as_slice().is_none());
    let st = tmp("m.safetensors");
    save_safetensors(&[("emb", &t), ("half", &half)], &st).unwrap();
    assert_eq!(safetensors_names(&st).unwrap(), vec!["emb".to_string(), "half".to_string()]);
    assert_eq!(Table::load_safetensors(&st, Some("emb"), true).unwrap().to_vec().unwrap(), w);
    assert_eq!(Table::load_safetensors(&st, Some("half"), false).unwrap().to_vec().unwrap(), half.to_vec().unwrap());
    assert_eq!(Table::load_safetensors(&st, None, false).unwrap_err().kind(), ErrorKind::InvalidArgument);

    let mut v = Vocab::new().unwrap();
    for word in ["king", "queen", "man", "woman", "apple", "pear"] {
        v.add(word).unwrap();
    }
    assert_eq!(v.add("king").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!((v.len(), v.find("man"), v.find("car"), v.word(1)), (6, Some(2), None, Some("queen".to_string())));
    let vp = tmp("v.txt");
    save_vectors(&t, &v, &vp, VectorsFormat::Word2VecText).unwrap();
    let mut seen = 0u64;
    let mut cb = |done: u64, total: u64| {
        seen = total;
        assert!(done <= total);
        false
    };
    let (t2, v2) = load_vectors(&vp, VectorsFormat::Word2VecText, Some(&mut cb)).unwrap();
    assert_eq!(seen, std::fs::metadata(&vp).unwrap().len());
    assert_eq!(t2.to_vec().unwrap(), w);
    assert_eq!(v2.word(5), Some("pear".to_string()));
    let mut stop = |_: u64, _: u64| true;
    let e = load_vectors(&vp, VectorsFormat::Word2VecText, Some(&mut stop)).unwrap_err();
    assert_eq!((e.code, e.kind()), (sys::TOKEMB_CANCELLED, ErrorKind::Cancelled));

    let (ids, scores) = t.nearest_ids(&[2], 5, Metric::Cosine, true).unwrap();
    let norm = |r: usize| w[r * 4..r * 4 + 4].iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = |r: usize| (0..4).map(|c| w[2 * 4 + c] as f64 * w[r * 4 + c] as f64).sum::<f64>() / (norm(2) * norm(r));
    let mut want: Vec<usize> = (0..6).filter(|&r| r != 2).collect();
    want.sort_by(|a, b| cos(*b).partial_cmp(&cos(*a)).unwrap());
    assert_eq!(ids, want.iter().map(|&r| r as i64).collect::<Vec<_>>());
    assert!((scores[0] as f64 - cos(want[0])).abs() < 1e-5);
    let (qi, _) = t.nearest(&w[8..12], 1, Metric::Dot, None).unwrap();
    assert_eq!(qi.len(), 1);
    let _ = std::fs::remove_dir_all(tmp("").parent().unwrap().join(format!("tokemb-rs-{}", std::process::id())));
}
