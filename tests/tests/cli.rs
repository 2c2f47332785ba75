//! The `csvlake` command line, run as a process on local directories: exit status 0 when every
//! file converts, 2 when some fail (listing them with their line), 1 on a fatal error.

use std::path::Path;
use std::process::{Command, Output};

use csvlake_tests::{Cell, Expect, assert_cells_eq, assert_parquet_schema, csvlake_bin, read_avro, read_parquet, walk};
use parquet::basic::Compression;

fn run(args: &[&str]) -> Output {
    csvlake("run", args)
}

fn csvlake(command: &str, args: &[&str]) -> Output {
    let out = Command::new(csvlake_bin())
        .arg(command)
        .args(args)
        .arg("--quiet")
        .env_remove("CSVLAKE_LOG")
        .output()
        .expect("run csvlake");
    eprintln!(
        "csvlake {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn write(dir: &Path, rel: &str, text: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Files under `dir` except the runs' and the tables' own objects (`_runs/`, `_tables/`), as
/// relative paths.
fn relative_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .filter(|p| !["_runs/", "_tables/"].iter().any(|d| p.starts_with(d) || p.contains(&format!("/{d}"))))
        .collect();
    v.sort();
    v
}

#[test]
fn exit_status_0_when_every_file_converts() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    write(&input, "a.csv", b"id,name\n1,ann\n2,\"b, c\"\n");
    write(&input, "sub/b.tsv", b"x\ty\n1.5\ttrue\n");
    write(&input, "notes.txt", b"ignored");

    let out = run(&["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 files: 2 converted, 0 failed"), "{stdout}");
    assert!(stdout.contains("3 rows"), "{stdout}");
    assert!(!stdout.contains("failed:"), "{stdout}");
    // A quiet run that succeeds says nothing on stderr: no log of the embedded endpoint's
    // expected error answers.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    assert_eq!(
        relative_files(&output),
        ["avro/a.avro", "avro/sub/b.avro", "parquet/a.parquet", "parquet/sub/b.parquet"]
    );
    let a = read_parquet(&output.join("parquet/a.parquet"));
    assert_parquet_schema("a.parquet", &a, &["id", "name"], &[Expect::Int, Expect::Text]);
    let want = vec![vec![Cell::Int(1), Cell::Text("ann".into())], vec![Cell::Int(2), Cell::Text("b, c".into())]];
    assert_cells_eq("a.parquet", &want, &a.rows);
    let b = read_avro(&output.join("avro/sub/b.avro"));
    assert_cells_eq("b.avro", &[vec![Cell::Float(1.5), Cell::Bool(true)]], &b.rows);
    assert_eq!(relative_files(&input).len(), 3, "the input directory is untouched");
}

#[test]
fn exit_status_2_lists_failed_files_with_their_line() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    write(&input, "good.csv", b"a,b\n1,2\n");
    write(&input, "bad.csv", b"a,b\n1,2\n3\n4,5\n");
    write(&input, "empty.csv", b"");

    let out = run(&["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 files: 1 converted, 2 failed"), "{stdout}");
    assert!(stdout.contains("failed: bad_input.ragged_row: 1 files"), "{stdout}");
    assert!(stdout.contains("failed: bad_input.empty: 1 files"), "{stdout}");
    let line = stdout.lines().find(|l| l.trim_start().starts_with("bad.csv:")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("line 3"), "the failed file's line is named: {line}");
    assert!(stdout.lines().any(|l| l.trim_start().starts_with("empty.csv:")), "{stdout}");

    assert_eq!(relative_files(&output), ["avro/good.avro", "parquet/good.parquet"], "nothing for the bad files");
}

#[test]
fn exit_status_1_on_a_missing_input_directory() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("does-not-exist"), root.path().join("out"));
    let out = run(&["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a directory") && stderr.contains("does-not-exist"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!output.exists(), "no output directory is created");
}

#[test]
fn options_reach_the_conversion() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!("{i};'x; {i}';NA\n"));
    }
    write(&input, "d.csv", text.as_bytes());
    write(&root.path().join("cfg"), "schema.json", br#"{"column_1": "string"}"#);
    let schema = root.path().join("cfg/schema.json");

    let out = run(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--formats",
        "parquet",
        "--delimiter",
        ";",
        "--quote",
        "'",
        "--no-header",
        "--null-value",
        "NA",
        "--schema",
        schema.to_str().unwrap(),
        "--parquet-compression",
        "zstd",
        "--row-group-rows",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(relative_files(&output), ["parquet/d.parquet"]);
    let pq = read_parquet(&output.join("parquet/d.parquet"));
    assert_parquet_schema("d.parquet", &pq, &["column_1", "column_2", "column_3"], &[Expect::Text; 3]);
    assert_eq!(pq.metadata.num_row_groups(), 5);
    assert!(matches!(pq.metadata.row_group(0).column(0).compression(), Compression::ZSTD(_)));
    let want: Vec<Vec<Cell>> =
        (0..50).map(|i| vec![Cell::Text(i.to_string()), Cell::Text(format!("x; {i}")), Cell::Null]).collect();
    assert_cells_eq("d.parquet", &want, &pq.rows);
}

#[test]
fn s3_locations_go_through_the_endpoint_url() {
    use csvlake_cli::local::{LocalBucket, LocalS3};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    let (raw, lake) = (root.path().join("raw"), root.path().join("lake"));
    write(&raw, "landing/2026/a.csv", b"id,v\n1,x\n2,y\n");
    write(&raw, "other/b.csv", b"id\n1\n");
    let server = rt
        .block_on(LocalS3::start(&[
            LocalBucket { name: "raw".into(), dir: raw.clone() },
            LocalBucket { name: "lake".into(), dir: lake.clone() },
        ]))
        .expect("start the endpoint");
    let ep = server.endpoint().clone();
    let out = Command::new(csvlake_bin())
        .args(["run", "--input", "s3://raw/landing/", "--output", "s3://lake/converted", "--quiet"])
        .args(["--endpoint-url", &ep.url])
        .env("AWS_ACCESS_KEY_ID", &ep.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &ep.secret_key)
        .env("AWS_REGION", &ep.region)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run csvlake");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("1 files: 1 converted"), "{stdout}");
    assert_eq!(relative_files(&lake), ["converted/avro/2026/a.avro", "converted/parquet/2026/a.parquet"]);
    drop(server);
}

#[test]
fn a_second_run_skips_up_to_date_files_and_reprocess_converts_the_fixed_ones() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    write(&input, "good.csv", b"a,b\n1,2\n");
    write(&input, "bad.csv", b"a,b\n1,2\n3\n");

    let first = run(&["--input", i, "--output", o, "--run-id", "one"]);
    assert_eq!(first.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&first.stdout);
    let failed_keys = output.join("_runs/one/failed-keys.json");
    assert!(stdout.contains(&format!("report: {}", output.join("_runs/one/report.json").display())), "{stdout}");
    assert!(stdout.contains(&format!("failed keys: {}", failed_keys.display())), "{stdout}");
    assert!(stdout.contains("csvlake reprocess --report"), "{stdout}");

    let second = run(&["--input", i, "--output", o, "--run-id", "two"]);
    assert_eq!(second.status.code(), Some(2), "bad.csv still fails");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.starts_with("1 files: 0 converted, 1 failed, 1 up to date"), "{stdout}");

    let forced = run(&["--input", i, "--output", o, "--run-id", "three", "--force"]);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(stdout.starts_with("2 files: 1 converted, 1 failed, 0 up to date"), "{stdout}");

    write(&input, "bad.csv", b"a,b\n1,2\n3,4\n");
    let fixed = csvlake("reprocess", &["--report", failed_keys.to_str().unwrap(), "--input", i, "--run-id", "four"]);
    assert_eq!(fixed.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&fixed.stdout);
    assert!(stdout.starts_with("1 files: 1 converted, 0 failed"), "{stdout}");
    let bad = read_parquet(&output.join("parquet/bad.parquet"));
    assert_cells_eq("bad.parquet", &[vec![Cell::Int(1), Cell::Int(2)], vec![Cell::Int(3), Cell::Int(4)]], &bad.rows);
}

#[test]
fn deleted_inputs_are_reported_and_removed_on_request_and_a_held_table_stops_the_run() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    write(&input, "sales/a.csv", b"a,b\n1,2\n");
    write(&input, "sales/b.csv", b"a,b\n3,4\n");
    assert_eq!(run(&["--input", i, "--output", o, "--run-id", "one"]).status.code(), Some(0));
    std::fs::remove_file(input.join("sales/b.csv")).unwrap();

    let kept = run(&["--input", i, "--output", o, "--run-id", "two"]);
    assert_eq!(kept.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&kept.stdout);
    assert!(stdout.contains("orphaned: 1 input gone since converted, their outputs kept"), "{stdout}");
    assert!(stdout.contains("  sales/b.csv"), "{stdout}");
    assert!(output.join("parquet/sales/b.parquet").exists());

    let removed = run(&["--input", i, "--output", o, "--run-id", "three", "--delete-orphans"]);
    assert_eq!(removed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&removed.stdout).contains("their outputs removed"));
    assert!(!output.join("parquet/sales/b.parquet").exists() && !output.join("avro/sales/b.avro").exists());
    assert!(output.join("parquet/sales/a.parquet").exists());

    // Another run holding the table stops this one before it converts anything.
    let lease = output.join("_tables/sales/lease.json");
    std::fs::write(&lease, br#"{"run_id": "elsewhere", "expires": "2999-01-01T00:00:00Z"}"#).unwrap();
    write(&input, "sales/c.csv", b"a,b\n5,6\n");
    let held = run(&["--input", i, "--output", o, "--run-id", "four"]);
    assert_eq!(held.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert!(stderr.contains("csvlake.RunInProgress") && stderr.contains("elsewhere"), "{stderr}");
    assert!(!output.join("parquet/sales/c.parquet").exists());
}

#[test]
fn configuration_errors_fail_at_once_in_one_line_that_names_the_fix() {
    use csvlake_cli::local::{LocalBucket, LocalS3};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    let raw = root.path().join("raw");
    write(&raw, "landing/a.csv", b"id\n1\n");
    let server =
        rt.block_on(LocalS3::start(&[LocalBucket { name: "raw".into(), dir: raw }])).expect("start the endpoint");
    let ep = server.endpoint().clone();
    let home = tempfile::tempdir().expect("home");

    // Each case: the environment it sets, the output bucket, and the fix its one line names.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 3] = [
        (
            "no region",
            &[("AWS_ACCESS_KEY_ID", &ep.access_key), ("AWS_SECRET_ACCESS_KEY", &ep.secret_key)],
            "raw",
            "no AWS region: set AWS_REGION",
        ),
        ("no credentials", &[("AWS_REGION", &ep.region)], "raw", "no AWS credentials: set AWS_PROFILE"),
        (
            "no bucket",
            &[
                ("AWS_ACCESS_KEY_ID", &ep.access_key),
                ("AWS_SECRET_ACCESS_KEY", &ep.secret_key),
                ("AWS_REGION", &ep.region),
            ],
            "missing",
            "the bucket does not exist: check the bucket name and the region",
        ),
    ];
    for (label, env, bucket, fix) in cases {
        let mut cmd = Command::new(csvlake_bin());
        cmd.args(["run", "--input", "s3://raw/landing/", "--output", &format!("s3://{bucket}/out/"), "--quiet"])
            .args(["--endpoint-url", &ep.url])
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            // No instance metadata service on this machine: never ask one.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = std::time::Instant::now();
        let out = cmd.output().expect("run csvlake");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{label}: {} in {elapsed:?}\nstderr:\n{stderr}", out.status);
        assert_eq!(out.status.code(), Some(1), "{label}: a configuration error is fatal");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{label}: one line, not {lines:?}");
        assert!(lines[0].contains(fix) && lines[0].len() < 300, "{label}: {}", lines[0]);
        assert!(!lines[0].contains("internal: internal"), "{label}: {}", lines[0]);
        // Not retried: the SDK's retries of a transient error take seconds.
        assert!(elapsed < std::time::Duration::from_secs(1), "{label}: took {elapsed:?}");
    }
    drop(server);
}

#[test]
fn a_widening_over_conform_limit_is_summarised_then_exits_1_with_its_reason() {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    write(&input, "sales/a.csv", b"amount,code\n10,5\n");
    write(&input, "sales/b.csv", b"amount,code\n11,6\n");
    let first = run(&["--input", i, "--output", o, "--run-id", "one"]);
    assert_eq!(first.status.code(), Some(0));

    write(&input, "sales/c.csv", b"amount,code\n3,AB-1\n");
    let second = run(&["--input", i, "--output", o, "--run-id", "two", "--conform-limit", "1"]);
    assert_eq!(second.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8_lossy(&second.stdout), String::from_utf8_lossy(&second.stderr));
    assert!(stdout.contains("failed: bad_input.schema_drift: 1 files"), "{stdout}");
    assert!(stdout.contains("the run failed: table \"sales\""), "{stdout}");
    // One line on stderr: the error, its table, the columns and the ways out; no log lines.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for part in ["csvlake.ConformLimit", "code: int64 → utf8", "conform_limit 1", "schema_policy fail"] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
}
