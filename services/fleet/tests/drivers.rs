//! Drivers end to end: the resource's round trips (create, get, list, update with mask and
//! etag, soft delete, undelete), every validation rule at once, licence numbers unique per
//! tenant however they are written, licence numbers and phones sealed at rest and re-sealed on
//! change, idempotent creates, list filters, orders and keyset pages, and the search for
//! drivers licensed and free for a window.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestApp, at, authed, driver, expect_code, lorry, preconditions, violated_fields, window,
};
use logistics_proto::fleet::v1 as pb;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

// Helpers ---------------------------------------------------------------------------------------

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn get(app: &TestApp, id: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .get_driver(authed(
            &app.admin_token,
            pb::GetDriverRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn update(app: &TestApp, driver: pb::Driver, paths: &[&str]) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .update_driver(authed(
            &app.admin_token,
            pb::UpdateDriverRequest {
                driver: Some(driver),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn delete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .delete_driver(authed(
            &app.admin_token,
            pb::DeleteDriverRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn undelete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .undelete_driver(authed(
            &app.admin_token,
            pb::UndeleteDriverRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn list(
    app: &TestApp,
    request: pb::ListDriversRequest,
) -> Result<pb::ListDriversResponse, Status> {
    app.client()
        .await
        .list_drivers(authed(&app.admin_token, request))
        .await
        .map(|r| r.into_inner())
}

/// The names of the first page of `filter` in `order_by`, live drivers only.
async fn names(app: &TestApp, filter: &str, order_by: &str) -> Vec<String> {
    list(
        app,
        pb::ListDriversRequest {
            filter: filter.to_owned(),
            order_by: order_by.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|s| panic!("filter {filter:?} order_by {order_by:?}: {s:?}"))
    .drivers
    .into_iter()
    .map(|d| d.name)
    .collect()
}

async fn ids(app: &TestApp, show_deleted: bool) -> Vec<String> {
    list(
        app,
        pb::ListDriversRequest {
            show_deleted,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .drivers
    .into_iter()
    .map(|d| d.id)
    .collect()
}

/// Every id of a listing in `order_by`, fetched `page_size` at a time; also the page sizes.
async fn every_page(app: &TestApp, order_by: &str, page_size: i32) -> (Vec<String>, Vec<usize>) {
    let (mut listed, mut sizes, mut page_token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let page = list(
            app,
            pb::ListDriversRequest {
                page_size,
                page_token: page_token.clone(),
                order_by: order_by.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sizes.push(page.drivers.len());
        listed.extend(page.drivers.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            return (listed, sizes);
        }
        page_token = page.next_page_token;
        assert!(sizes.len() < 20, "paging does not end");
    }
}

async fn driver_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fleet.drivers")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// A driver's row as stored: sealed licence number, its blind index, sealed phone, and the
/// whole row as text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawDriver {
    licence_ciphertext: Vec<u8>,
    licence_index: Vec<u8>,
    phone_ciphertext: Option<Vec<u8>>,
    row_text: String,
}

async fn raw(app: &TestApp, id: &str) -> RawDriver {
    let (licence_ciphertext, licence_index, phone_ciphertext, row_text) =
        sqlx::query_as::<_, (Vec<u8>, Vec<u8>, Option<Vec<u8>>, String)>(
            "SELECT licence_number_ciphertext, licence_number_index, phone_ciphertext, d::text \
             FROM fleet.drivers d WHERE id = $1",
        )
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    RawDriver {
        licence_ciphertext,
        licence_index,
        phone_ciphertext,
        row_text,
    }
}

fn hex(value: &str) -> String {
    value.bytes().map(|b| format!("{b:02x}")).collect()
}

#[track_caller]
fn assert_not_in(text: &str, values: &[&str], what: &str) {
    for value in values {
        assert!(
            !text.contains(value) && !text.contains(&hex(value)),
            "{what} holds {value:?} in plain text: {text}"
        );
    }
}

// Round trips -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_driver_round_trips_through_create_get_update_delete_and_undelete() {
    let app = TestApp::spawn().await;
    let created = app
        .create_driver(pb::Driver {
            licence_number: "b072 rm-9ab".into(),
            ..driver("Ann Example")
        })
        .await;
    assert!(Uuid::parse_str(&created.id).is_ok(), "{}", created.id);
    assert_eq!(created.name, "Ann Example");
    assert_eq!(created.licence_number, "B072RM9AB", "stored normalised");
    assert_eq!(
        created.licence_classes,
        [pb::LicenceClass::C as i32, pb::LicenceClass::Ce as i32]
    );
    assert_eq!(created.licence_expire_time, Some(at(24 * 365 * 3)));
    assert_eq!(created.phone, "+4915123456789", "stored in E.164");
    assert_eq!(
        created.status,
        pb::DriverStatus::Active as i32,
        "active by default"
    );
    assert_eq!(created.user_id, "");
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.delete_time, None);
    assert!(!created.etag.is_empty());
    assert_eq!(get(&app, &created.id).await.unwrap(), created);

    let updated = update(
        &app,
        pb::Driver {
            id: created.id.clone(),
            etag: created.etag.clone(),
            name: "Ann Renamed".into(),
            status: pb::DriverStatus::Inactive as i32,
            // Not in the mask: must not change.
            phone: "+4930123456".into(),
            licence_classes: vec![pb::LicenceClass::B as i32],
            ..Default::default()
        },
        &["name", "status"],
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "Ann Renamed");
    assert_eq!(updated.status, pb::DriverStatus::Inactive as i32);
    assert_eq!(updated.phone, created.phone);
    assert_eq!(updated.licence_number, created.licence_number);
    assert_eq!(updated.licence_classes, created.licence_classes);
    assert_eq!(updated.create_time, created.create_time);
    assert_ne!(updated.etag, created.etag);
    assert_eq!(get(&app, &created.id).await.unwrap(), updated);

    let deleted = delete(&app, &created.id, &updated.etag).await.unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, updated.etag);
    assert_eq!(
        get(&app, &created.id).await.unwrap(),
        deleted,
        "Get finds deleted drivers"
    );
    assert!(
        ids(&app, false).await.is_empty(),
        "List hides deleted drivers"
    );
    assert_eq!(ids(&app, true).await, [created.id.as_str()]);
    let again = expect_code(delete(&app, &created.id, "").await, Code::NotFound);
    assert!(again.message().contains(&created.id), "{}", again.message());

    let restored = undelete(&app, &created.id, &deleted.etag).await.unwrap();
    assert_eq!(restored.delete_time, None);
    assert_eq!(restored.name, "Ann Renamed");
    assert_eq!(ids(&app, false).await, [created.id.as_str()]);
    let live = expect_code(
        undelete(&app, &created.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&live),
        [("NOT_DELETED".to_owned(), created.id.clone())]
    );

    let unknown = Uuid::now_v7().to_string();
    expect_code(get(&app, &unknown).await, Code::NotFound);
    expect_code(delete(&app, &unknown, "").await, Code::NotFound);
    expect_code(undelete(&app, &unknown, "").await, Code::NotFound);
    let bad = expect_code(get(&app, "driver-1").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["id"]);
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_driver(driver("Bea")).await;
    let current = update(
        &app,
        pb::Driver {
            id: created.id.clone(),
            etag: created.etag.clone(),
            name: "Bea Two".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();

    let stale = expect_code(
        update(
            &app,
            pb::Driver {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Bea Three".into(),
                phone: "+4930999999".into(),
                ..Default::default()
            },
            &["name", "phone"],
        )
        .await,
        Code::Aborted,
    );
    assert!(stale.message().contains("etag"), "{}", stale.message());
    expect_code(
        delete(&app, &created.id, &created.etag).await,
        Code::Aborted,
    );
    expect_code(
        update(
            &app,
            pb::Driver {
                id: created.id.clone(),
                etag: "\"99\"".into(),
                name: "X".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(
        get(&app, &created.id).await.unwrap(),
        current,
        "nothing changed"
    );

    // Without an etag the change is unconditional.
    let forced = update(
        &app,
        pb::Driver {
            id: created.id.clone(),
            name: "Bea Forced".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    assert_eq!(forced.name, "Bea Forced");
    let garbage = expect_code(
        update(
            &app,
            pb::Driver {
                id: created.id.clone(),
                etag: "W/1".into(),
                name: "X".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&garbage), ["driver.etag"]);
}

#[tokio::test]
async fn an_update_names_its_fields_in_a_mask_and_is_validated_like_a_create() {
    let app = TestApp::spawn().await;
    let created = app.create_driver(driver("Cem")).await;
    let target = |d: pb::Driver| pb::Driver {
        id: created.id.clone(),
        ..d
    };
    let empty = expect_code(
        update(&app, target(pb::Driver::default()), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&empty), ["update_mask"]);
    let unknown = expect_code(
        update(&app, target(pb::Driver::default()), &["name", "id", "etag"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&unknown),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    let invalid = expect_code(
        update(
            &app,
            target(pb::Driver {
                name: String::new(),
                phone: "030 123456".into(),
                licence_classes: vec![],
                status: 0,
                ..Default::default()
            }),
            &["name", "phone", "licence_classes", "status"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&invalid),
        [
            "driver.name",
            "driver.licence_classes",
            "driver.phone",
            "driver.status"
        ]
    );
    let no_id = expect_code(
        update(&app, pb::Driver::default(), &["name"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&no_id), ["driver.id"]);
    assert_eq!(get(&app, &created.id).await.unwrap(), created);

    // Clearing the optional phone is a change like any other.
    let cleared = update(&app, target(pb::Driver::default()), &["phone"])
        .await
        .unwrap();
    assert_eq!(cleared.phone, "");
    assert_eq!(raw(&app, &created.id).await.phone_ciphertext, None);
    // A deleted driver cannot be updated.
    delete(&app, &created.id, "").await.unwrap();
    expect_code(
        update(
            &app,
            target(pb::Driver {
                name: "Ghost".into(),
                ..Default::default()
            }),
            &["name"],
        )
        .await,
        Code::NotFound,
    );
}

// Validation ------------------------------------------------------------------------------------

#[tokio::test]
async fn every_invalid_field_of_a_new_driver_is_reported_at_once_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let err = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                name: "   ".into(),
                licence_number: "AB1".into(),
                licence_classes: vec![pb::LicenceClass::Ce as i32, 99, pb::LicenceClass::Ce as i32],
                licence_expire_time: None,
                phone: "0151 2345678".into(),
                user_id: "not-a-uuid".into(),
                status: 42,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "driver.name",
            "driver.licence_number",
            "driver.licence_classes[1]",
            "driver.licence_classes[2]",
            "driver.licence_expire_time",
            "driver.phone",
            "driver.user_id",
            "driver.status",
        ]
    );
    let descriptions: Vec<String> = err
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.description)
        .collect();
    assert!(
        descriptions.iter().all(|d| !d.is_empty()),
        "{descriptions:?}"
    );
    assert!(descriptions[3].contains("twice"), "{descriptions:?}");

    let err = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                name: "x".repeat(201),
                licence_number: "AB#12345".into(),
                licence_classes: vec![],
                licence_expire_time: Some(prost_types::Timestamp {
                    seconds: -1,
                    nanos: 0,
                }),
                phone: "+49 151 CALL ME".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "driver.name",
            "driver.licence_number",
            "driver.licence_classes",
            "driver.licence_expire_time",
            "driver.phone",
        ]
    );

    let err = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                licence_number: "A-B-C-D".into(),
                licence_classes: vec![pb::LicenceClass::C as i32, 0],
                ..driver("Unspecified Class")
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["driver.licence_number", "driver.licence_classes[1]"],
        "four characters once dashes are dropped; UNSPECIFIED is no class"
    );

    let err = expect_code(
        app.client()
            .await
            .create_driver(authed(
                &app.admin_token,
                pb::CreateDriverRequest {
                    request_id: "again".into(),
                    driver: None,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "request_id",
            "driver.name",
            "driver.licence_number",
            "driver.licence_classes",
            "driver.licence_expire_time",
        ]
    );
    assert_eq!(driver_rows(&app).await, 0);

    // The limits themselves are fine: 200 characters (not bytes), 20 letters or digits.
    let longest = app
        .create_driver(pb::Driver {
            licence_number: "ab-cd ef-gh ij-kl mn-op qr-st".into(),
            phone: String::new(),
            ..driver(&"ü".repeat(200))
        })
        .await;
    assert_eq!(longest.name.chars().count(), 200);
    assert_eq!(longest.licence_number, "ABCDEFGHIJKLMNOPQRST");
    assert_eq!(longest.phone, "");
    assert_eq!(driver_rows(&app).await, 1);
}

// Uniqueness ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_licence_number_is_unique_per_tenant_among_live_drivers_however_it_is_written() {
    let app = TestApp::spawn().await;
    let first = app
        .create_driver(pb::Driver {
            licence_number: "B072 RM-9AB".into(),
            ..driver("Ann")
        })
        .await;
    for written in ["b072rm9ab", "B-072-RM-9AB", " b 0 7 2 r m 9 a b "] {
        let taken = expect_code(
            app.create_driver_as(
                &app.admin_token,
                pb::Driver {
                    licence_number: written.into(),
                    ..driver("Copy")
                },
            )
            .await,
            Code::AlreadyExists,
        );
        assert_eq!(violated_fields(&taken), ["driver.licence_number"]);
        let text = format!("{} {:?}", taken.message(), taken.details());
        for echo in [written, "B072RM9AB", "b072rm9ab", "B072 RM-9AB"] {
            assert!(!text.contains(echo), "{echo:?} echoed: {text}");
        }
    }
    let other = app.create_driver(driver("Bob")).await;
    let taken = expect_code(
        update(
            &app,
            pb::Driver {
                id: other.id.clone(),
                licence_number: "b072-rm9ab".into(),
                ..Default::default()
            },
            &["licence_number"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.licence_number"]);
    assert_eq!(get(&app, &other.id).await.unwrap(), other);

    // Another tenant has its own drivers, and its own licence numbers.
    let (_, other_admin) = app.identity.other_tenant("Elsewhere").await.unwrap();
    let abroad = app
        .create_driver_as(
            &other_admin,
            pb::Driver {
                licence_number: "B072RM9AB".into(),
                ..driver("Ann Abroad")
            },
        )
        .await
        .unwrap();
    assert_eq!(abroad.licence_number, "B072RM9AB");

    // Deleting the driver frees the number; bringing it back while it is taken again is refused.
    delete(&app, &first.id, "").await.unwrap();
    let successor = app
        .create_driver(pb::Driver {
            licence_number: "b072rm9ab".into(),
            ..driver("Successor")
        })
        .await;
    assert_eq!(successor.licence_number, "B072RM9AB");
    let back = expect_code(undelete(&app, &first.id, "").await, Code::AlreadyExists);
    let fields = violated_fields(&back);
    assert!(
        fields.len() == 1 && fields[0].ends_with("licence_number"),
        "{fields:?}"
    );
    assert!(get(&app, &first.id).await.unwrap().delete_time.is_some());
}

#[tokio::test]
async fn an_identity_user_is_linked_to_one_live_driver_at_most() {
    let app = TestApp::spawn().await;
    let user_id = Uuid::now_v7().to_string();
    let first = app
        .create_driver(pb::Driver {
            user_id: user_id.clone(),
            ..driver("Ann")
        })
        .await;
    assert_eq!(first.user_id, user_id);
    let taken = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                user_id: user_id.clone(),
                ..driver("Bob")
            },
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.user_id"]);
    let bob = app.create_driver(driver("Bob")).await;
    let taken = expect_code(
        update(
            &app,
            pb::Driver {
                id: bob.id.clone(),
                user_id: user_id.clone(),
                ..Default::default()
            },
            &["user_id"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.user_id"]);

    delete(&app, &first.id, "").await.unwrap();
    let linked = update(
        &app,
        pb::Driver {
            id: bob.id.clone(),
            user_id: user_id.clone(),
            ..Default::default()
        },
        &["user_id"],
    )
    .await
    .unwrap();
    assert_eq!(linked.user_id, user_id);
}

// Sealing ---------------------------------------------------------------------------------------

#[tokio::test]
async fn licence_numbers_and_phones_are_sealed_at_rest_and_in_the_idempotency_table() {
    let app = TestApp::spawn().await;
    let request_id = Uuid::now_v7().to_string();
    let created = app
        .client()
        .await
        .create_driver(authed(
            &app.admin_token,
            pb::CreateDriverRequest {
                request_id: request_id.clone(),
                driver: Some(pb::Driver {
                    licence_number: "QZ 9071-KX 55".into(),
                    phone: "+44 (20) 7946-0958".into(),
                    ..driver("Sealed Sam")
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .driver
        .unwrap();
    assert_eq!(created.licence_number, "QZ9071KX55");
    assert_eq!(created.phone, "+442079460958");
    let personal = [
        "QZ9071KX55",
        "qz9071kx55",
        "QZ 9071-KX 55",
        "+442079460958",
        "442079460958",
        "2079460958",
    ];

    let stored = raw(&app, &created.id).await;
    assert_eq!(
        stored.licence_index.len(),
        32,
        "an HMAC-SHA-256 blind index"
    );
    assert!(stored.licence_ciphertext.len() > "QZ9071KX55".len());
    assert!(stored.phone_ciphertext.is_some());
    assert_ne!(stored.licence_index, stored.licence_ciphertext);
    assert_not_in(&stored.row_text, &personal, "fleet.drivers");
    for bytes in [
        &stored.licence_ciphertext,
        stored.phone_ciphertext.as_ref().unwrap(),
    ] {
        let lossy = String::from_utf8_lossy(bytes);
        assert_not_in(&lossy, &personal, "a ciphertext");
    }

    let db = app.db().await;
    let claims: Vec<String> = sqlx::query_scalar("SELECT k::text FROM fleet.idempotency_keys k")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        claims.len(),
        1,
        "the create was recorded under its request id"
    );
    assert!(claims[0].contains(&request_id));
    assert_not_in(&claims[0], &personal, "fleet.idempotency_keys");
    let response: Vec<u8> = sqlx::query_scalar("SELECT response FROM fleet.idempotency_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_not_in(
        &String::from_utf8_lossy(&response),
        &personal,
        "the stored response",
    );

    // Two drivers with the same number (one deleted) share the blind index, not the ciphertext.
    delete(&app, &created.id, "").await.unwrap();
    let twin = app
        .create_driver(pb::Driver {
            licence_number: "qz9071kx55".into(),
            ..driver("Twin")
        })
        .await;
    let twin_row = raw(&app, &twin.id).await;
    assert_eq!(twin_row.licence_index, stored.licence_index);
    assert_ne!(twin_row.licence_ciphertext, stored.licence_ciphertext);
}

#[tokio::test]
async fn changing_a_phone_or_licence_number_seals_the_new_value_afresh() {
    let app = TestApp::spawn().await;
    let created = app.create_driver(driver("Dora")).await;
    let before = raw(&app, &created.id).await;

    let rephoned = update(
        &app,
        pb::Driver {
            id: created.id.clone(),
            etag: created.etag.clone(),
            phone: "+33 1 23 45 67 89".into(),
            ..Default::default()
        },
        &["phone"],
    )
    .await
    .unwrap();
    assert_eq!(rephoned.phone, "+33123456789");
    assert_eq!(rephoned.licence_number, created.licence_number);
    let after_phone = raw(&app, &created.id).await;
    assert_ne!(after_phone.phone_ciphertext, before.phone_ciphertext);
    assert_eq!(after_phone.licence_index, before.licence_index);
    assert_not_in(
        &after_phone.row_text,
        &["+33123456789", "33123456789"],
        "fleet.drivers",
    );

    let relicensed = update(
        &app,
        pb::Driver {
            id: created.id.clone(),
            etag: rephoned.etag.clone(),
            licence_number: "nw 5580-ty".into(),
            ..Default::default()
        },
        &["licence_number"],
    )
    .await
    .unwrap();
    assert_eq!(relicensed.licence_number, "NW5580TY");
    assert_eq!(relicensed.phone, "+33123456789");
    let after_licence = raw(&app, &created.id).await;
    assert_ne!(
        after_licence.licence_ciphertext,
        after_phone.licence_ciphertext
    );
    assert_ne!(after_licence.licence_index, after_phone.licence_index);
    assert_eq!(after_licence.licence_index.len(), 32);
    assert_not_in(
        &after_licence.row_text,
        &["NW5580TY", "nw5580ty"],
        "fleet.drivers",
    );
    assert_eq!(get(&app, &created.id).await.unwrap(), relicensed);

    // The old number is free again; the new one is taken.
    app.create_driver(pb::Driver {
        licence_number: created.licence_number.clone(),
        ..driver("Heir")
    })
    .await;
    let taken = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                licence_number: "NW-5580-TY".into(),
                ..driver("Copy")
            },
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.licence_number"]);
}

// Idempotency -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_retried_create_returns_the_same_driver_and_writes_one_row() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDriverRequest {
        request_id: Uuid::now_v7().to_string(),
        driver: Some(driver("Eve")),
    };
    let mut client = app.client().await;
    let first = client
        .create_driver(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_driver(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(driver_rows(&app).await, 1);

    let changed = pb::CreateDriverRequest {
        driver: Some(pb::Driver {
            licence_number: "ZZ99999999".into(),
            ..request.driver.clone().unwrap()
        }),
        ..request.clone()
    };
    let err = expect_code(
        client
            .create_driver(authed(&app.admin_token, changed))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert_eq!(driver_rows(&app).await, 1);

    // Without a request id, the same driver twice is a duplicate, not a retry.
    let taken = expect_code(
        app.create_driver_as(&app.admin_token, request.driver.clone().unwrap())
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.licence_number"]);
    assert_eq!(driver_rows(&app).await, 1);
}

/// Sends `requests` at once, each on its own connection; returns every outcome.
async fn race(
    app: &TestApp,
    requests: Vec<pb::CreateDriverRequest>,
) -> Vec<Result<pb::Driver, Status>> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut calls = Vec::new();
    for request in requests {
        let mut client = app.client().await;
        let barrier = barrier.clone();
        let token = app.admin_token.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .create_driver(authed(&token, request))
                .await
                .map(|r| r.into_inner().driver.unwrap())
        }));
    }
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn ten_simultaneous_creates_of_one_licence_number_leave_one_driver_and_nine_duplicates() {
    let app = TestApp::spawn().await;
    let requests = (0..10)
        .map(|i| pb::CreateDriverRequest {
            request_id: Uuid::now_v7().to_string(),
            driver: Some(pb::Driver {
                licence_number: if i % 2 == 0 {
                    "RACE-00001"
                } else {
                    "race 00001"
                }
                .into(),
                ..driver(&format!("Racer {i}"))
            }),
        })
        .collect();
    let outcomes = race(&app, requests).await;
    let created: Vec<&pb::Driver> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    for status in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(violated_fields(status), ["driver.licence_number"]);
    }
    assert_eq!(driver_rows(&app).await, 1);
}

#[tokio::test]
async fn ten_simultaneous_retries_of_one_create_agree_on_one_driver() {
    let app = TestApp::spawn().await;
    let request = pb::CreateDriverRequest {
        request_id: Uuid::now_v7().to_string(),
        driver: Some(driver("Retry")),
    };
    let outcomes = race(&app, vec![request; 10]).await;
    let ids: Vec<String> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|s| panic!("a retry failed: {s:?}")).id)
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(driver_rows(&app).await, 1);
}

#[tokio::test]
async fn a_create_refused_as_a_duplicate_can_be_retried_with_its_request_id_once_the_number_is_free()
 {
    let app = TestApp::spawn().await;
    let holder = app.create_driver(driver("Holder")).await;
    let request = pb::CreateDriverRequest {
        request_id: Uuid::now_v7().to_string(),
        driver: Some(pb::Driver {
            licence_number: holder.licence_number.clone(),
            ..driver("Newcomer")
        }),
    };
    let mut client = app.client().await;
    let taken = expect_code(
        client
            .create_driver(authed(&app.admin_token, request.clone()))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["driver.licence_number"]);
    let claims: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fleet.idempotency_keys WHERE request_id = $1")
            .bind(Uuid::parse_str(&request.request_id).unwrap())
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(claims, 0, "a refused create leaves no claim behind");
    delete(&app, &holder.id, "").await.unwrap();
    let newcomer = client
        .create_driver(authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner()
        .driver
        .unwrap();
    assert_eq!(newcomer.name, "Newcomer");
}

// Listing ---------------------------------------------------------------------------------------

/// Anna (C, CE), andreas (B, inactive), ANTON (CE, terminated), Bob (C1), Berta (CE), and a
/// deleted Anja (CE).
async fn crew(app: &TestApp) {
    let with = |name: &str, classes: &[pb::LicenceClass], status: pb::DriverStatus| pb::Driver {
        licence_classes: classes.iter().map(|c| *c as i32).collect(),
        status: status as i32,
        ..driver(name)
    };
    use pb::DriverStatus::{Active, Inactive, Terminated};
    use pb::LicenceClass::{B, C, C1, Ce};
    app.create_driver(with("Anna", &[C, Ce], Active)).await;
    app.create_driver(with("andreas", &[B], Inactive)).await;
    app.create_driver(with("ANTON", &[Ce], Terminated)).await;
    app.create_driver(with("Bob", &[C1], Active)).await;
    app.create_driver(with("Berta", &[Ce], Active)).await;
    let anja = app.create_driver(with("Anja", &[Ce], Active)).await;
    delete(app, &anja.id, "").await.unwrap();
}

#[tokio::test]
async fn drivers_are_listed_by_status_licence_class_and_case_insensitive_name_prefix() {
    let app = TestApp::spawn().await;
    crew(&app).await;
    assert_eq!(
        names(&app, "", "").await,
        ["andreas", "Anna", "ANTON", "Berta", "Bob"]
    );
    assert_eq!(
        names(&app, "status = DRIVER_STATUS_INACTIVE", "").await,
        ["andreas"]
    );
    assert_eq!(
        names(&app, "status != DRIVER_STATUS_ACTIVE", "").await,
        ["andreas", "ANTON"]
    );
    assert_eq!(
        names(&app, "licence_class = LICENCE_CLASS_CE", "").await,
        ["Anna", "ANTON", "Berta"]
    );
    assert_eq!(
        names(&app, "licence_class != LICENCE_CLASS_CE", "").await,
        ["andreas", "Bob"]
    );
    assert_eq!(
        names(&app, r#"name = "An*""#, "").await,
        ["andreas", "Anna", "ANTON"]
    );
    assert_eq!(names(&app, r#"name = "ann*""#, "").await, ["Anna"]);
    assert_eq!(names(&app, r#"name != "an*""#, "").await, ["Berta", "Bob"]);
    assert_eq!(names(&app, r#"name = "anna""#, "").await, ["Anna"]);
    assert_eq!(
        names(&app, r#"name != "ANNA""#, "").await,
        ["andreas", "ANTON", "Berta", "Bob"]
    );
    assert!(
        names(&app, r#"name = "A_*""#, "").await.is_empty(),
        "`_` is a literal, not a LIKE wildcard"
    );
    assert!(
        names(&app, r#"name = "%*""#, "").await.is_empty(),
        "`%` is a literal"
    );
    assert_eq!(
        names(
            &app,
            r#"name = "A*" AND licence_class = LICENCE_CLASS_CE AND status = DRIVER_STATUS_ACTIVE"#,
            ""
        )
        .await,
        ["Anna"]
    );
    let with_deleted: Vec<String> = list(
        &app,
        pb::ListDriversRequest {
            filter: r#"name = "anj*""#.into(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .drivers
    .into_iter()
    .map(|d| d.name)
    .collect();
    assert_eq!(with_deleted, ["Anja"]);
    // Case-insensitive beyond ASCII, as the order is.
    app.create_driver(driver("Ümit")).await;
    app.create_driver(driver("ümran")).await;
    assert_eq!(names(&app, r#"name = "ÜM*""#, "").await, ["Ümit", "ümran"]);
    assert_eq!(names(&app, r#"name = "ümi*""#, "").await, ["Ümit"]);
    assert_eq!(names(&app, r#"name = "ümit""#, "").await, ["Ümit"]);
    // `%`, `_` and `\` in a prefix match themselves and nothing else, either way.
    app.create_driver(driver("50% Off_Co")).await;
    app.create_driver(driver("50X Offer")).await;
    app.create_driver(driver(r"Back\slash")).await;
    assert_eq!(names(&app, r#"name = "50% O*""#, "").await, ["50% Off_Co"]);
    assert_eq!(
        names(&app, r#"name = "50% off_*""#, "").await,
        ["50% Off_Co"]
    );
    assert_eq!(
        names(&app, r#"name = "50*" AND name != "50% O*""#, "").await,
        ["50X Offer"]
    );
    assert!(names(&app, r#"name = "5_*""#, "").await.is_empty());
    assert_eq!(
        names(&app, r#"name = "back\\*""#, "").await,
        [r"Back\slash"]
    );

    for filter in [
        "colour = RED",
        "status = DRIVER_STATUS_BORED",
        "status = DRIVER_STATUS_UNSPECIFIED",
        "licence_class = LICENCE_CLASS_Z",
        "phone = \"+49*\"",
        "licence_number = \"B072RM9AB\"",
        "status > DRIVER_STATUS_ACTIVE",
        "name = ",
        "status = DRIVER_STATUS_ACTIVE OR status = DRIVER_STATUS_INACTIVE",
    ] {
        let err = expect_code(
            list(
                &app,
                pb::ListDriversRequest {
                    filter: filter.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["filter"], "{filter}");
    }
}

#[tokio::test]
async fn drivers_are_ordered_by_name_or_creation_either_way() {
    let app = TestApp::spawn().await;
    crew(&app).await;
    let by_name = ["andreas", "Anna", "ANTON", "Berta", "Bob"];
    assert_eq!(names(&app, "", "name").await, by_name);
    assert_eq!(names(&app, "", "name asc").await, by_name);
    let mut reversed = by_name;
    reversed.reverse();
    assert_eq!(names(&app, "", "name desc").await, reversed);
    let created = ["Anna", "andreas", "ANTON", "Bob", "Berta"];
    assert_eq!(names(&app, "", "create_time").await, created);
    let mut newest_first = created;
    newest_first.reverse();
    assert_eq!(names(&app, "", "create_time desc").await, newest_first);
    for order_by in [
        "phone",
        "name sideways",
        "licence_number",
        "name desc extra",
    ] {
        let err = expect_code(
            list(
                &app,
                pb::ListDriversRequest {
                    order_by: order_by.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["order_by"], "{order_by}");
    }
}

#[tokio::test]
async fn eleven_drivers_in_pages_of_four_come_each_once_in_order() {
    let app = TestApp::spawn().await;
    // Names repeat (in varying case), so the id breaks ties.
    let mut created = Vec::new();
    for i in 0..11 {
        let name = ["kim", "Lou", "KIM", "max"][i % 4];
        let d = app.create_driver(driver(name)).await;
        created.push((name.to_lowercase(), d.id));
    }
    let creation: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
    let mut by_name = created.clone();
    by_name.sort();
    let by_name: Vec<String> = by_name.into_iter().map(|(_, id)| id).collect();

    for (order_by, expected) in [
        ("name", by_name.clone()),
        ("name desc", by_name.iter().rev().cloned().collect()),
        ("create_time", creation.clone()),
        ("create_time desc", creation.iter().rev().cloned().collect()),
    ] {
        let (listed, sizes) = every_page(&app, order_by, 4).await;
        assert_eq!(sizes, [4, 4, 3], "{order_by}");
        assert_eq!(listed, expected, "{order_by}: each once, in order");
    }
    let (listed, sizes) = every_page(&app, "name", 11).await;
    assert_eq!(
        (listed.len(), sizes),
        (11, vec![11]),
        "an exact last page has no token"
    );

    // A token belongs to its listing.
    let first = list(
        &app,
        pb::ListDriversRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!first.next_page_token.is_empty());
    for request in [
        pb::ListDriversRequest {
            page_size: 4,
            page_token: first.next_page_token.clone(),
            order_by: "create_time".into(),
            ..Default::default()
        },
        pb::ListDriversRequest {
            page_size: 4,
            page_token: first.next_page_token.clone(),
            filter: r#"name = "kim""#.into(),
            ..Default::default()
        },
        pb::ListDriversRequest {
            page_token: format!("{}x", first.next_page_token),
            ..Default::default()
        },
    ] {
        let err = expect_code(list(&app, request).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["page_token"]);
    }
    let negative = expect_code(
        list(
            &app,
            pb::ListDriversRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&negative), ["page_size"]);
}

// FindAvailableDrivers --------------------------------------------------------------------------

async fn available(
    app: &TestApp,
    window: Option<logistics_proto::r#type::v1::TimeWindow>,
    class: i32,
) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .find_available_drivers(authed(
            &app.admin_token,
            pb::FindAvailableDriversRequest {
                window,
                licence_class: class,
                page_size: 0,
            },
        ))
        .await
        .map(|r| r.into_inner().drivers.into_iter().map(|d| d.name).collect())
}

#[tokio::test]
async fn available_drivers_are_active_live_licensed_to_the_window_end_and_not_booked() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-AV 1")).await;
    let spare = app.create_truck(lorry("B-AV 2")).await;
    let ce = |name: &str| driver(name);
    let with_classes = |name: &str, classes: &[pb::LicenceClass]| pb::Driver {
        licence_classes: classes.iter().map(|c| *c as i32).collect(),
        ..driver(name)
    };
    app.create_driver(ce("zoe")).await;
    app.create_driver(ce("Adam")).await;
    app.create_driver(with_classes("Bob", &[pb::LicenceClass::C]))
        .await;
    app.create_driver(pb::Driver {
        status: pb::DriverStatus::Inactive as i32,
        ..ce("Cem Inactive")
    })
    .await;
    app.create_driver(pb::Driver {
        status: pb::DriverStatus::Terminated as i32,
        ..ce("Cora Terminated")
    })
    .await;
    app.create_driver(pb::Driver {
        licence_expire_time: Some(at(12)),
        ..ce("Dora Until Noon")
    })
    .await;
    app.create_driver(pb::Driver {
        licence_expire_time: Some(at(11)),
        ..ce("Dan Until Eleven")
    })
    .await;
    let gone = app.create_driver(ce("Eve Deleted")).await;
    delete(&app, &gone.id, "").await.unwrap();
    let finn = app.create_driver(ce("Finn Booked")).await;
    app.assign(&truck, &finn, window(10, 11)).await.unwrap();
    let gus = app.create_driver(ce("Gus Cancelled")).await;
    let cancelled = app.assign(&truck, &gus, window(8, 9)).await.unwrap();
    app.client()
        .await
        .cancel_assignment(authed(
            &app.admin_token,
            pb::CancelAssignmentRequest {
                id: cancelled.id,
                etag: cancelled.etag,
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let hal = app.create_driver(ce("hal Back To Back")).await;
    app.assign(&spare, &hal, window(12, 14)).await.unwrap();
    app.assign(&spare, &hal, window(4, 8)).await.unwrap();

    let ce_class = pb::LicenceClass::Ce as i32;
    assert_eq!(
        available(&app, Some(window(8, 12)), ce_class)
            .await
            .unwrap(),
        [
            "Adam",
            "Dora Until Noon",
            "Gus Cancelled",
            "hal Back To Back",
            "zoe"
        ]
    );
    assert_eq!(
        available(&app, Some(window(8, 12)), 0).await.unwrap(),
        [
            "Adam",
            "Bob",
            "Dora Until Noon",
            "Gus Cancelled",
            "hal Back To Back",
            "zoe"
        ],
        "any class when none is asked for"
    );
    assert_eq!(
        available(&app, Some(window(8, 12)), pb::LicenceClass::B as i32)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        available(&app, Some(window(9, 11)), ce_class)
            .await
            .unwrap(),
        [
            "Adam",
            "Dan Until Eleven",
            "Dora Until Noon",
            "Gus Cancelled",
            "hal Back To Back",
            "zoe"
        ],
        "licensed to the end of this shorter window"
    );
    assert_eq!(
        available(&app, Some(window(13, 16)), ce_class)
            .await
            .unwrap(),
        ["Adam", "Finn Booked", "Gus Cancelled", "zoe"]
    );
    let first = app
        .client()
        .await
        .find_available_drivers(authed(
            &app.admin_token,
            pb::FindAvailableDriversRequest {
                window: Some(window(8, 12)),
                licence_class: ce_class,
                page_size: 2,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .drivers;
    assert_eq!(
        first.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["Adam", "Dora Until Noon"]
    );
    assert!(!first[0].licence_number.is_empty(), "opened for the caller");
}

#[tokio::test]
async fn a_bad_search_for_available_drivers_lists_every_violation() {
    let app = TestApp::spawn().await;
    let err = expect_code(
        app.client()
            .await
            .find_available_drivers(authed(
                &app.admin_token,
                pb::FindAvailableDriversRequest {
                    window: None,
                    licence_class: 99,
                    page_size: -1,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["window", "licence_class", "page_size"]
    );
    let err = expect_code(
        available(&app, Some(window(12, 8)), 0).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["window.end_time"]);
    let err = expect_code(
        available(&app, Some(window(8, 8)), 0).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["window.end_time"]);
    let err = expect_code(
        available(
            &app,
            Some(logistics_proto::r#type::v1::TimeWindow {
                start_time: Some(at(8)),
                end_time: None,
            }),
            0,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["window.end_time"]);
}
