//! The seed walkthrough in Rust: `torch.manual_seed(123); nn.Embedding(6, 3)`, lookup of [2, 3, 5, 1],
//! an out-of-range id, and the one-hot x W view of the same lookup.
//! Run: TOKEMB_LIB_DIR=<build dir> cargo run --offline --example seed
use tokemb::{Dtype, Table};

fn print_torch(prefix: &str, m: &[f32], cols: usize, suffix: &str) {
    let width = m.iter().map(|v| format!("{v:.4}").len()).max().unwrap_or(0);
    let rows = m.len() / cols;
    print!("{prefix}[");
    for r in 0..rows {
        if r > 0 {
            print!("{:w$}", "", w = prefix.len() + 1);
        }
        let cells: Vec<String> = m[r * cols..(r + 1) * cols].iter().map(|v| format!("{:>width$.4}", v)).collect();
        print!("[{}]", cells.join(", "));
        if r + 1 < rows {
            println!(",");
        }
    }
    println!("]{suffix}");
}

fn main() -> Result<(), tokemb::Error> {
    println!("tokemb {} - the seed walkthrough (Rust)\n", tokemb::version_string());
    let mut t = Table::new(6, 3, Dtype::F32)?;
    t.init_normal(123, 0.0, 1.0)?;
    println!(">>> torch.manual_seed(123)\n>>> embedding = nn.Embedding(6, 3)   # Table::new(6, 3); init_normal(123, 0, 1)");
    println!(">>> embedding.weight\nParameter containing:");
    print_torch("tensor(", t.as_slice().unwrap(), 3, ", requires_grad=True)");

    let ids = [2i64, 3, 5, 1];
    let out = t.lookup_vec(&ids)?;
    println!("\n>>> embedding(torch.tensor([2, 3, 5, 1]))   # Table::lookup: rows 2, 3, 5, 1");
    print_torch("tensor(", &out, 3, ", grad_fn=<EmbeddingBackward0>)");

    println!("\n>>> embedding(torch.tensor([6]))   # a token id is only an index: 6 is outside the table");
    match t.lookup_vec(&[6]) {
        Err(e) => println!("Err({:?}): {}", e.kind(), e.message),
        Ok(_) => println!("unexpected success"),
    }

    let mut onehot = vec![0f32; out.len()];
    t.lookup_onehot(&ids, &mut onehot)?;
    println!("\none-hot(ids) x W (sgemm) equals the gather bit for bit: {}",
             onehot.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()));
    Ok(())
}
