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
            subject_gateway::world::gps_json(upload).unwrap_or_default(),
            "exif.gps"
        );
        assert_eq!(
            image["takenAt"],
            upload.taken_at.as_str(),
            "a BSON date as RFC 3339"
        );
        assert_eq!(
            image["tags"],
            subject_gateway::world::tags_json(upload),
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
    assert!(gateway.service.sdl().contains("albums: Albums!"));

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
