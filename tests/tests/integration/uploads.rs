//! Uploads in MongoDB: nested document paths, typed values, a collection added by declaration.

use mongodb::bson::doc;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::{at, len, subject_ok};

#[tokio::test]
async fn nested_document_paths_come_out_typed() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.uploads.iter().any(|u| u.gps.is_some() && u.camera.is_some()))
        .expect("someone uploaded a photo with GPS data");

    let response = gateway
        .subject(
            "USER_ID",
            &person.user_id.to_string(),
            "{ uploads { images { id ownerId filename contentType sizeBytes storageKey camera gps takenAt tags uploadedAt visibility } } }",
        )
        .await?;
    let subject = subject_ok(&response);
    let images = at(subject, &["uploads", "images"]);
    assert_eq!(len(images), person.uploads.len());
    for upload in &person.uploads {
        let image = images
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["id"] == upload.id.as_str())
            .expect("every upload, by its ObjectId in hex");
        assert_eq!(image["ownerId"], person.user_id, "owner.id");
        assert_eq!(image["filename"], upload.filename.as_str());
        assert_eq!(image["sizeBytes"], upload.bytes.len() as i64);
        assert_eq!(image["storageKey"], upload.storage_key.as_str());
        assert_eq!(image["camera"], serde_json::json!(upload.camera), "exif.camera");
        assert_eq!(
            image["gps"],
            subject_gateway_demo::world::gps_json(upload).unwrap_or_default(),
            "exif.gps"
        );
        assert_eq!(
            image["takenAt"],
            upload.taken_at.as_str(),
            "a BSON date as RFC 3339"
        );
        assert_eq!(
            image["tags"],
            subject_gateway_demo::world::tags_json(upload),
            "an array of sub-documents"
        );
        assert_eq!(image["visibility"], upload.visibility);
    }
    Ok(())
}

#[tokio::test]
async fn a_collection_declared_in_a_new_file_appears_in_schema_and_results() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let person = &world.people[1];
    let albums = world
        .uploads
        .database
        .collection::<mongodb::bson::Document>("albums");
    albums
        .insert_many([
            doc! { "owner": { "user": { "id": person.user_id } }, "title": "Holidays", "photos": [{ "key": "a.jpg" }, { "key": "b.jpg" }] },
            doc! { "owner": { "user": { "id": 424_242_i64 } }, "title": "Someone else's", "photos": [] },
        ])
        .await?;
    let config = ConfigCopy::new()?;
    config.write_connector(
        "albums.toml",
        r#"kind = "mongodb"
url = "${ALBUMS_MONGODB_URL}"

[entities.albums]
lookup = [{ kind = "user_id", field = "owner_id" }]

[entities.albums.fields]
owner_id = { type = "bigint", category = "user.unique_id", path = "owner.user.id" }
title = { type = "string", category = "user.content.private" }
photos = { type = "json", category = "user.content.self_image" }
"#,
    )?;
    let base = world.env();
    let url = world.uploads.url.clone();
    let env = move |name: &str| {
        if name == "ALBUMS_MONGODB_URL" {
            Some(url.clone())
        } else {
            base(name)
        }
    };
    let gateway = TestGateway::start(&config.gateway_toml(), env, Vec::new()).await?;
    assert!(gateway.service.sdl().contains("albums: Albums\n"));

    let response = gateway
        .subject(
            "EMAIL",
            &person.email,
            "{ albums { albums { ownerId title photos } } }",
        )
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(
        at(subject, &["albums", "albums"]),
        &serde_json::json!([{ "ownerId": person.user_id, "title": "Holidays", "photos": [{ "key": "a.jpg" }, { "key": "b.jpg" }] }])
    );
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

const FILES: &str =
    "{ uploads { images { id storageKey files { key present size contentType checksum } } } }";

#[tokio::test]
async fn every_upload_points_to_its_file_with_size_type_and_checksum() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.uploads.len() >= 2)
        .expect("someone uploaded twice");
    // One file went missing from the store: the metadata still points to it.
    let lost = &person.uploads[1];
    std::fs::remove_file(world.files.path().join(&lost.storage_key))?;

    let response = gateway
        .subject("USER_ID", &person.user_id.to_string(), FILES)
        .await?;
    let subject = subject_ok(&response);
    let images = at(subject, &["uploads", "images"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(images.len(), person.uploads.len());
    for upload in &person.uploads {
        let image = images
            .iter()
            .find(|i| i["id"] == upload.id.as_str())
            .expect("each upload");
        let file = &image["files"][0];
        assert_eq!(file["key"], upload.storage_key.as_str());
        if upload.id == lost.id {
            assert_eq!(file["present"], false);
            assert!(file["size"].is_null() && file["checksum"].is_null());
        } else {
            assert_eq!(file["present"], true);
            assert_eq!(file["size"], upload.bytes.len() as i64);
            assert_eq!(file["contentType"], upload.content_type);
            assert_eq!(file["checksum"], sha256_hex(&upload.bytes));
        }
    }
    Ok(())
}

#[tokio::test]
async fn files_can_live_in_an_s3_bucket() -> anyhow::Result<()> {
    let endpoint = std::env::var("TEST_S3_ENDPOINT").map_err(|_| {
        anyhow::anyhow!(
            "TEST_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts moto"
        )
    })?;
    let world = ReferenceWorld::create(6).await?;
    let bucket = format!("sg-test-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await?;
    anyhow::ensure!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );

    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/uploads.toml",
        "url = \"${UPLOADS_STORAGE_URL}\"",
        "url = \"${UPLOADS_STORAGE_URL}\"\nendpoint = \"${UPLOADS_S3_ENDPOINT}\"\naccess_key_id = \"${UPLOADS_S3_KEY}\"\nsecret_access_key = \"${UPLOADS_S3_SECRET}\"\nallow_http = true",
    )?;
    let base = world.env();
    let storage_url = format!("s3://{bucket}/uploads-prefix");
    let env = {
        let (storage_url, endpoint) = (storage_url.clone(), endpoint.clone());
        move |name: &str| match name {
            "UPLOADS_STORAGE_URL" => Some(storage_url.clone()),
            "UPLOADS_S3_ENDPOINT" => Some(endpoint.clone()),
            "UPLOADS_S3_KEY" => Some("testing".to_owned()),
            "UPLOADS_S3_SECRET" => Some("testing".to_owned()),
            other => base(other),
        }
    };
    // Put the files in the bucket through the same storage settings the gateway uses.
    let loaded = subject_gateway::config::Config::load(&config.gateway_toml())?;
    let uploads = loaded
        .connectors
        .iter()
        .find(|c| c.descriptor.name == "uploads")
        .and_then(|c| c.storage.clone())
        .expect("uploads declare storage");
    let store =
        subject_connectors::storage::FileStore::build(&uploads, &env, std::time::Duration::from_secs(5))?;
    assert_eq!(store.kind, "s3");
    subject_gateway_demo::world::seed_files(&store, &world.people).await?;
    let gateway = TestGateway::start(&config.gateway_toml(), env, Vec::new()).await?;

    let person = world
        .people
        .iter()
        .find(|p| !p.uploads.is_empty())
        .expect("someone uploaded");
    let response = gateway
        .subject("USER_ID", &person.user_id.to_string(), FILES)
        .await?;
    let subject = subject_ok(&response);
    let images = at(subject, &["uploads", "images"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(images.len(), person.uploads.len());
    for upload in &person.uploads {
        let image = images
            .iter()
            .find(|i| i["id"] == upload.id.as_str())
            .expect("each upload");
        assert_eq!(image["files"][0]["present"], true);
        assert_eq!(image["files"][0]["size"], upload.bytes.len() as i64);
        assert_eq!(image["files"][0]["checksum"], sha256_hex(&upload.bytes));
    }
    Ok(())
}
