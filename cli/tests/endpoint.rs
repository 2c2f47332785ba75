//! The embedded S3 endpoint through the protocol, with the SDK client the pipeline uses: one
//! ETag per object version, listings, user metadata and conditional requests.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use csvlake_cli::local::{LocalBucket, LocalFs, LocalS3};

const BUCKET: &str = "lake";

struct Server {
    client: Client,
    bucket: std::path::PathBuf,
    _s3: LocalS3,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    start_with(|fs| fs).await
}

async fn start_with(wrap: impl FnOnce(LocalFs) -> LocalFs) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join(BUCKET);
    let s3 = LocalS3::start_with(&[LocalBucket { name: BUCKET.into(), dir: bucket.clone() }], wrap).await.unwrap();
    Server { client: s3.client(), bucket, _s3: s3, _dir: dir }
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Asserts that a request failed with HTTP status `want` and, when the answer has a body, the
/// error code `code`.
fn assert_failed<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, SdkError<E, HttpResponse>>,
    want: u16,
    code: &str,
) {
    let e = r.expect_err("the request should have failed");
    assert_eq!(status(&e), Some(want), "{e:?}");
    if let Some(c) = e.code() {
        assert_eq!(c, code, "{e:?}");
    }
}

impl Server {
    async fn put(&self, key: &str, body: &str) -> String {
        let out = self.client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body.as_bytes().to_vec()));
        out.send().await.unwrap().e_tag.unwrap()
    }

    async fn get(&self, key: &str) -> (String, String, HashMap<String, String>) {
        let out = self.client.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        let etag = out.e_tag.clone().unwrap();
        let metadata = out.metadata.clone().unwrap_or_default();
        let body = out.body.collect().await.unwrap().into_bytes();
        (String::from_utf8(body.to_vec()).unwrap(), etag, metadata)
    }

    async fn head(&self, key: &str) -> (String, HashMap<String, String>) {
        let out = self.client.head_object().bucket(BUCKET).key(key).send().await.unwrap();
        (out.e_tag.unwrap(), out.metadata.unwrap_or_default())
    }

    async fn list_etag(&self, key: &str) -> (String, i64) {
        let out = self.client.list_objects_v2().bucket(BUCKET).prefix(key).send().await.unwrap();
        let object = out.contents().iter().find(|o| o.key() == Some(key)).expect("listed");
        assert!(object.last_modified().is_some());
        (object.e_tag().unwrap().to_owned(), object.size().unwrap())
    }

    /// A multipart upload of `parts`, completed with the given preconditions.
    async fn multipart(
        &self,
        key: &str,
        parts: &[&str],
        metadata: Option<HashMap<String, String>>,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
    ) -> (String, Result<String, SdkError<impl ProvideErrorMetadata + std::fmt::Debug, HttpResponse>>) {
        let created =
            self.client.create_multipart_upload().bucket(BUCKET).key(key).set_metadata(metadata).send().await.unwrap();
        let id = created.upload_id().unwrap().to_owned();
        let mut done = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let n = i32::try_from(i + 1).unwrap();
            let out = self
                .client
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(part.as_bytes().to_vec()))
                .send()
                .await
                .unwrap();
            done.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag).build());
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .set_if_match(if_match.map(str::to_owned))
            .set_if_none_match(if_none_match.map(str::to_owned))
            .send()
            .await;
        (id, completed.map(|c| c.e_tag.unwrap()))
    }
}

#[tokio::test]
async fn one_etag_per_version_everywhere() {
    let s = start().await;
    let put = s.put("a/one.csv", "x,y\n1,2\n").await;
    assert!(put.starts_with('"') && put.ends_with('"'), "{put}");
    let (body, got, _) = s.get("a/one.csv").await;
    assert_eq!(body, "x,y\n1,2\n");
    assert_eq!(got, put);
    assert_eq!(s.head("a/one.csv").await.0, put);
    assert_eq!(s.list_etag("a/one.csv").await, (put.clone(), 8));

    // A ranged GET is of the same version.
    let ranged = s.client.get_object().bucket(BUCKET).key("a/one.csv").range("bytes=2-4").send().await.unwrap();
    assert_eq!(ranged.e_tag(), Some(put.as_str()));
    assert_eq!(ranged.content_range(), Some("bytes 2-4/8"));
    assert_eq!(&ranged.body.collect().await.unwrap().into_bytes()[..], b"y\n1");

    // The ETag is the MD5 of the content, as S3's for one PUT: the same bytes written again keep
    // it, other bytes of the same size do not.
    assert_eq!(put, "\"344fd2323dd33d5c058b7cf27de029e8\"", "md5 of x,y\\n1,2\\n");
    let again = s.put("a/one.csv", "x,y\n1,2\n").await;
    assert_eq!(again, put);
    let other = s.put("a/one.csv", "x,y\n3,4\n").await;
    assert_ne!(other, put);
    assert_eq!(s.head("a/one.csv").await.0, other);
    assert_eq!(s.list_etag("a/one.csv").await.0, other);

    let (_, completed) = s.multipart("b/two.csv", &["first part,", "second part\n"], None, None, None).await;
    let completed = completed.unwrap();
    let (body, got, _) = s.get("b/two.csv").await;
    assert_eq!(body, "first part,second part\n");
    assert_eq!(got, completed);
    assert_eq!(s.head("b/two.csv").await.0, completed);
    assert_eq!(s.list_etag("b/two.csv").await, (completed, 23));
}

/// Writes `key` straight into the bucket directory.
fn touch(bucket: &Path, key: &str) {
    let path = bucket.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, key).unwrap();
}

#[tokio::test]
async fn listings_page_through_every_key_once_in_byte_order() {
    let s = start().await;
    let mut keys = Vec::new();
    for i in 0..2_500 {
        let key = match i % 5 {
            0 => format!("top{i:04}.csv"),
            1 => format!("d{}/k{i:04}", i % 3),
            2 => format!("d{}/e{}/k{i:04}.csv", i % 3, i % 7),
            3 => format!("d{}.x/ü{}/k{i}", i % 2, i % 4),
            _ => format!("d{}-y/f/g/h/k{i}", i % 2),
        };
        touch(&s.bucket, &key);
        keys.push(key);
    }
    keys.sort_unstable();
    // Not keys: the endpoint's scratch and sidecar files, s3s-fs's metadata files, folders.
    for junk in [".csvlake.1.2.object", "d1/.csvlake.k0001.metadata.json", ".bucket-bGFrZQ.object-aw.metadata.json"] {
        touch(&s.bucket, junk);
    }
    std::fs::create_dir_all(s.bucket.join("empty/folder")).unwrap();

    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s
            .client
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(1000)
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap();
        pages += 1;
        let n = page.contents().len();
        assert_eq!(page.key_count(), Some(i32::try_from(n).unwrap()));
        for o in page.contents() {
            assert_eq!(o.size(), Some(i64::try_from(o.key().unwrap().len()).unwrap()));
            assert!(o.e_tag().is_some() && o.last_modified().is_some());
            seen.push(o.key().unwrap().to_owned());
        }
        if page.is_truncated() == Some(true) {
            assert_eq!(n, 1000);
            token = page.next_continuation_token().map(str::to_owned);
            assert!(token.is_some());
        } else {
            assert_eq!(page.next_continuation_token(), None);
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);

    // The default page is 1,000 keys, and the SDK's paginator sees the same keys.
    let first = s.client.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(first.contents().len(), 1000);
    let mut paginated = Vec::new();
    let mut pages = s.client.list_objects_v2().bucket(BUCKET).max_keys(333).into_paginator().send();
    while let Some(page) = pages.next().await {
        paginated.extend(page.unwrap().contents().iter().map(|o| o.key().unwrap().to_owned()));
    }
    assert_eq!(paginated, keys);

    // A prefix, a start-after, both.
    let list = |prefix: Option<&str>, after: Option<&str>| {
        let req = s.client.list_objects_v2().bucket(BUCKET).set_prefix(prefix.map(str::to_owned));
        let req = req.set_start_after(after.map(str::to_owned));
        async move {
            let mut got = Vec::new();
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                got.extend(page.unwrap().contents().iter().map(|o| o.key().unwrap().to_owned()));
            }
            got
        }
    };
    let expect = |f: &dyn Fn(&str) -> bool| keys.iter().filter(|k| f(k)).cloned().collect::<Vec<_>>();
    assert_eq!(list(Some("d1/"), None).await, expect(&|k| k.starts_with("d1/")));
    assert_eq!(list(Some("d1"), None).await, expect(&|k| k.starts_with("d1")));
    assert_eq!(list(Some("d0.x/ü"), None).await, expect(&|k| k.starts_with("d0.x/ü")));
    assert_eq!(list(None, Some("d2/e3/k1000.csv")).await, expect(&|k| k > "d2/e3/k1000.csv"));
    assert_eq!(list(None, Some("d1/e")).await, expect(&|k| k > "d1/e"));
    assert_eq!(list(Some("d2/"), Some("d2/e4")).await, expect(&|k| k.starts_with("d2/") && k > "d2/e4"));
    assert!(list(Some("nothing/"), None).await.is_empty());

    // The delimiter rolls folders up; the empty one is not a common prefix.
    let out = s.client.list_objects_v2().bucket(BUCKET).prefix("d1/").delimiter("/").send().await.unwrap();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["d1/e0/", "d1/e1/", "d1/e2/", "d1/e3/", "d1/e4/", "d1/e5/", "d1/e6/"]);
    assert_eq!(out.contents().len(), expect(&|k| k.starts_with("d1/k")).len());
    let out = s.client.list_objects_v2().bucket(BUCKET).delimiter("/").send().await.unwrap();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["d0-y/", "d0.x/", "d0/", "d1-y/", "d1.x/", "d1/", "d2/"]);

    // What is listed is what HEAD answers.
    let listed = s.list_etag("d2/e3/k0017.csv").await;
    assert_eq!(s.head("d2/e3/k0017.csv").await.0, listed.0);
}

#[tokio::test]
async fn user_metadata_round_trips_and_an_overwrite_without_it_clears_it() {
    let s = start().await;
    user_metadata_round_trips(&s).await;
    let meta = HashMap::from([("k".to_owned(), "v".to_owned())]);
    s.client
        .put_object()
        .bucket(BUCKET)
        .key("m/x.csv")
        .set_metadata(Some(meta))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let object = s.bucket.join("m/x.csv");
    let sidecar = s.bucket.join("m/.csvlake.x.csv.metadata.json");
    let probe = s.bucket.join("probe");
    std::fs::write(&probe, b"").unwrap();
    if xattr::set(&probe, "user.probe", b"1").is_ok() {
        // In an extended attribute: no file beside the object.
        let stored = xattr::get(&object, "user.csvlake.metadata").unwrap().expect("the attribute");
        assert_eq!(String::from_utf8(stored).unwrap(), r#"{"k":"v"}"#);
        assert!(!sidecar.exists());
    } else {
        assert!(sidecar.is_file());
    }
}

#[tokio::test]
async fn user_metadata_goes_to_sidecar_files_without_extended_attributes() {
    let s = start_with(LocalFs::without_xattrs).await;
    user_metadata_round_trips(&s).await;
    let meta = HashMap::from([("k".to_owned(), "v".to_owned())]);
    s.client
        .put_object()
        .bucket(BUCKET)
        .key("m/side.csv")
        .set_metadata(Some(meta.clone()))
        .body(ByteStream::from_static(b"s"))
        .send()
        .await
        .unwrap();
    assert!(s.bucket.join("m/.csvlake.side.csv.metadata.json").is_file());
    let listed = s.client.list_objects_v2().bucket(BUCKET).prefix("m/").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["m/multi.csv", "m/put.csv", "m/side.csv"]);
    s.client.delete_object().bucket(BUCKET).key("m/side.csv").send().await.unwrap();
    assert!(!s.bucket.join("m/.csvlake.side.csv.metadata.json").exists());
}

async fn user_metadata_round_trips(s: &Server) {
    let meta = HashMap::from([("source".to_owned(), "in/a.csv".to_owned()), ("run".to_owned(), "7".to_owned())]);
    s.client
        .put_object()
        .bucket(BUCKET)
        .key("m/put.csv")
        .set_metadata(Some(meta.clone()))
        .body(ByteStream::from_static(b"a"))
        .send()
        .await
        .unwrap();
    assert_eq!(s.head("m/put.csv").await.1, meta);
    assert_eq!(s.get("m/put.csv").await.2, meta);

    let (_, completed) = s.multipart("m/multi.csv", &["a", "b"], Some(meta.clone()), None, None).await;
    completed.unwrap();
    assert_eq!(s.head("m/multi.csv").await.1, meta);
    assert_eq!(s.get("m/multi.csv").await.2, meta);

    // Overwritten without metadata, by PUT and by a multipart upload.
    s.put("m/put.csv", "b").await;
    assert!(s.head("m/put.csv").await.1.is_empty());
    assert!(s.get("m/put.csv").await.2.is_empty());
    let (_, completed) = s.multipart("m/multi.csv", &["c"], None, None, None).await;
    completed.unwrap();
    assert!(s.head("m/multi.csv").await.1.is_empty());
    assert!(s.get("m/multi.csv").await.2.is_empty());
}

#[tokio::test]
async fn if_none_match_creates_only() {
    let s = start().await;
    let put = |body: &'static str| {
        s.client
            .put_object()
            .bucket(BUCKET)
            .key("once.json")
            .if_none_match("*")
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
    };
    put("first").await.unwrap();
    assert_failed(put("second").await, 412, "PreconditionFailed");
    assert_eq!(s.get("once.json").await.0, "first");

    // Of concurrent creates of one key, exactly one wins, and its body is the object.
    let bodies: Vec<String> = (0..16).map(|i| format!("writer {i}")).collect();
    let tasks: Vec<_> = bodies
        .iter()
        .map(|body| {
            let req = s
                .client
                .put_object()
                .bucket(BUCKET)
                .key("race.json")
                .if_none_match("*")
                .body(ByteStream::from(body.as_bytes().to_vec()));
            tokio::spawn(req.send())
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(_) => winners.push(i),
            Err(e) => {
                assert_eq!(status(&e), Some(412), "{e:?}");
                assert_eq!(e.code(), Some("PreconditionFailed"));
            }
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(s.get("race.json").await.0, bodies[winners[0]]);

    // A multipart upload too; the upload stays, to be aborted.
    let (id, completed) = s.multipart("once.json", &["third"], None, None, Some("*")).await;
    assert_failed(completed, 412, "PreconditionFailed");
    s.client.abort_multipart_upload().bucket(BUCKET).key("once.json").upload_id(id).send().await.unwrap();
    let (_, completed) = s.multipart("new.json", &["fourth"], None, None, Some("*")).await;
    completed.unwrap();
    assert_eq!(s.get("once.json").await.0, "first");
    assert_eq!(s.get("new.json").await.0, "fourth");
}

#[tokio::test]
async fn if_match_replaces_only_the_version_named() {
    let s = start().await;
    let put = |etag: &str, body: &'static str| {
        s.client
            .put_object()
            .bucket(BUCKET)
            .key("cas.json")
            .if_match(etag)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
    };
    assert_failed(put("\"0-0\"", "absent").await, 412, "PreconditionFailed");
    let v1 = s.put("cas.json", "v1").await;
    assert_failed(put("\"1-2\"", "wrong").await, 412, "PreconditionFailed");
    let v2 = put(&v1, "v2").await.unwrap().e_tag.unwrap();
    assert_ne!(v2, v1);
    // The old version is gone: its ETag no longer matches. Unquoted ETags do.
    assert_failed(put(&v1, "stale").await, 412, "PreconditionFailed");
    let v3 = put(v2.trim_matches('"'), "v3").await.unwrap().e_tag.unwrap();
    assert_eq!(s.get("cas.json").await.0, "v3");

    let (_, completed) = s.multipart("cas.json", &["v", "4"], None, Some(&v2), None).await;
    assert_failed(completed, 412, "PreconditionFailed");
    let (_, completed) = s.multipart("cas.json", &["v", "4"], None, Some(&v3), None).await;
    let v4 = completed.unwrap();
    assert_eq!(s.get("cas.json").await, ("v4".to_owned(), v4, HashMap::new()));
}

#[tokio::test]
async fn reads_honour_if_match_and_if_none_match() {
    let s = start().await;
    let etag = s.put("r.csv", "data").await;
    let get = |if_match: Option<&str>, if_none_match: Option<&str>| {
        s.client
            .get_object()
            .bucket(BUCKET)
            .key("r.csv")
            .set_if_match(if_match.map(str::to_owned))
            .set_if_none_match(if_none_match.map(str::to_owned))
            .send()
    };
    let head = |if_match: Option<&str>, if_none_match: Option<&str>| {
        s.client
            .head_object()
            .bucket(BUCKET)
            .key("r.csv")
            .set_if_match(if_match.map(str::to_owned))
            .set_if_none_match(if_none_match.map(str::to_owned))
            .send()
    };
    let out = get(Some(&etag), None).await.unwrap();
    assert_eq!(&out.body.collect().await.unwrap().into_bytes()[..], b"data");
    assert_eq!(head(Some(&etag), None).await.unwrap().e_tag(), Some(etag.as_str()));
    assert_eq!(head(Some(etag.trim_matches('"')), None).await.unwrap().e_tag(), Some(etag.as_str()));
    assert_failed(get(Some("\"1-2\""), None).await, 412, "PreconditionFailed");
    assert_failed(head(Some("\"1-2\""), None).await, 412, "PreconditionFailed");

    assert_failed(get(None, Some(&etag)).await, 304, "NotModified");
    assert_failed(head(None, Some(&etag)).await, 304, "NotModified");
    assert_failed(get(None, Some("*")).await, 304, "NotModified");
    assert!(get(None, Some("\"1-2\"")).await.is_ok());
    assert!(head(None, Some("\"1-2\"")).await.is_ok());

    // If-Modified-Since: not since a minute from now; since a minute ago.
    let now = std::time::SystemTime::now();
    let later = aws_sdk_s3::primitives::DateTime::from(now + std::time::Duration::from_secs(60));
    let earlier = aws_sdk_s3::primitives::DateTime::from(now - std::time::Duration::from_secs(60));
    let since = |t| s.client.head_object().bucket(BUCKET).key("r.csv").if_modified_since(t).send();
    assert_failed(since(later).await, 304, "NotModified");
    assert!(since(earlier).await.is_ok());
    let unmodified = |t| s.client.head_object().bucket(BUCKET).key("r.csv").if_unmodified_since(t).send();
    assert_failed(unmodified(earlier).await, 412, "PreconditionFailed");
    assert!(unmodified(later).await.is_ok());

    // Absent: 404, as S3 answers.
    let absent = s.client.get_object().bucket(BUCKET).key("none.csv").if_match(&etag).send().await;
    assert_failed(absent, 404, "NoSuchKey");
    assert_failed(s.client.head_object().bucket(BUCKET).key("none.csv").send().await, 404, "NotFound");
}

#[tokio::test]
async fn deletes_honour_if_match() {
    let s = start().await;
    let etag = s.put("d.csv", "data").await;
    let delete = |if_match: Option<&str>| {
        s.client.delete_object().bucket(BUCKET).key("d.csv").set_if_match(if_match.map(str::to_owned)).send()
    };
    assert_failed(delete(Some("\"1-2\"")).await, 412, "PreconditionFailed");
    assert_failed(
        s.client.delete_object().bucket(BUCKET).key("d.csv").if_match_size(3).send().await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(s.head("d.csv").await.0, etag);
    delete(Some(&etag)).await.unwrap();
    assert!(!s.bucket.join("d.csv").exists());
    // Deleting what is not there succeeds, unless it was conditional.
    delete(None).await.unwrap();
    assert_failed(delete(Some(&etag)).await, 404, "NoSuchKey");

    // DeleteObjects answers per key.
    let kept = s.put("many/kept.csv", "k").await;
    let gone = s.put("many/gone.csv", "g").await;
    let id = |key: &str, etag: &str| ObjectIdentifier::builder().key(key).e_tag(etag).build().unwrap();
    let delete = Delete::builder()
        .objects(id("many/kept.csv", &gone))
        .objects(id("many/gone.csv", &gone))
        .objects(ObjectIdentifier::builder().key("many/never.csv").build().unwrap())
        .build()
        .unwrap();
    let out = s.client.delete_objects().bucket(BUCKET).delete(delete).send().await.unwrap();
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["many/gone.csv", "many/never.csv"]);
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].key(), Some("many/kept.csv"));
    assert_eq!(out.errors()[0].code(), Some("PreconditionFailed"));
    assert_eq!(s.head("many/kept.csv").await.0, kept);
    assert!(!s.bucket.join("many/gone.csv").exists());
}

#[tokio::test]
async fn reserved_and_unclean_keys_are_refused() {
    let s = start().await;
    for key in [".csvlake.x", "a/.csvlake.b.metadata.json", "a//b", "a/./b", "a/../b", "a/"] {
        let r = s.client.put_object().bucket(BUCKET).key(key).body(ByteStream::from_static(b"x")).send().await;
        let e = r.expect_err(key);
        assert_eq!(status(&e), Some(400), "{key}: {e:?}");
    }
    let listed = s.client.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert!(listed.contents().is_empty());
}
