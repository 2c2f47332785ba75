//! Physical line numbers in errors (CRLF and bare-CR files, blank lines) and inputs whose outputs would
//! collide: cases that the CSV parser and the output layout get wrong unless handled.

use std::collections::BTreeMap;

use csvlake_contract::payload::FileStatus;
use csvlake_tests::{Harness, result_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_input_errors_name_the_physical_line() {
    let h = Harness::start().await;
    h.put("crlf/ragged.csv", "a,b\r\n1,2\r\n3\r\n");
    h.put("crlf/quoted.csv", "a,b\r\n1,\"x\r\ny\"\r\n2\r\n");
    h.put("crlf/cr.csv", "a,b\r1,2\r\r3,\"x\ry\"\r4\r");
    h.put("crlf/quote.csv", "a,b\r\n1,2\r\n3,\"x\r\ny\"z\r\n");
    let result = h.run(&h.job("crlf/", "out/")).await;
    for (key, kind, line) in [
        ("crlf/ragged.csv", "bad_input.ragged_row", 3),
        ("crlf/quoted.csv", "bad_input.ragged_row", 4),
        ("crlf/cr.csv", "bad_input.ragged_row", 6),
        ("crlf/quote.csv", "bad_input.malformed_quote", 3),
    ] {
        let r = result_for(&result, key);
        assert_eq!(r.status, FileStatus::Failed, "{key}");
        let e = r.error.as_ref().unwrap();
        assert_eq!((e.kind.as_str(), e.line), (kind, Some(line)), "{key}: {}", e.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_after_a_blank_line_name_the_physical_line() {
    let h = Harness::start().await;
    h.put("blank/ragged.csv", "a,b\n1,2\n\n3\n");
    let result = h.run(&h.job("blank/", "out/")).await;
    let e = result_for(&result, "blank/ragged.csv").error.clone().unwrap();
    assert_eq!((e.kind.as_str(), e.line), ("bad_input.ragged_row", Some(4)), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_differing_only_in_suffix_never_share_an_output() {
    let h = Harness::start().await;
    h.put("s/a.csv", "v\n1\n");
    h.put("s/a.tsv", "v\nx\n");
    h.put("s/a.csv.gz", csvlake_tests::gzip(b"v\ntrue\n"));
    let result = h.run(&h.job("s/", "out/")).await;
    let mut writers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in result.files.iter().filter(|f| f.status == FileStatus::Converted) {
        for o in &f.outputs {
            writers.entry(o.key.as_str()).or_default().push(f.key.as_str());
        }
    }
    let shared: Vec<_> = writers.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(shared.is_empty(), "outputs written by several inputs, all reported converted: {shared:?}");
    assert_eq!(result_for(&result, "s/a.csv").status, FileStatus::Converted);
    for loser in ["s/a.csv.gz", "s/a.tsv"] {
        let e = result_for(&result, loser).error.clone().unwrap();
        assert_eq!(e.kind, "bad_input.output_collision", "{loser}");
        assert!(e.message.contains("s/a.csv,") || e.message.ends_with("s/a.csv, which keeps them"), "{}", e.message);
    }
}
