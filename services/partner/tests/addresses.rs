//! Addresses end to end: the round trip, idempotent creates, etags, validation, the one default
//! address per partner and kind, filtering and paging, and who may see an address.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{TestApp, acme, authed, expect_code, violated_fields};
use logistics_proto::partner::v1 as pb;
use prost_types::FieldMask;
use sqlx::PgPool;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const ADDRESS: &str = "logistics.partner.v1.Address";
const PARTNER: &str = "logistics.partner.v1.Partner";

/// The address calls, made with one caller's token.
struct Addresses<'a> {
    app: &'a TestApp,
    token: &'a str,
}

impl<'a> Addresses<'a> {
    fn of_admin(app: &'a TestApp) -> Self {
        Self::with_token(app, &app.admin_token)
    }

    fn with_token(app: &'a TestApp, token: &'a str) -> Self {
        Self { app, token }
    }

    async fn create(&self, address: pb::Address) -> Result<pb::Address, Status> {
        self.app.create_address_as(self.token, address).await
    }

    async fn create_with_request_id(
        &self,
        request_id: &str,
        address: pb::Address,
    ) -> Result<pb::Address, Status> {
        self.app
            .client()
            .await
            .create_address(authed(
                self.token,
                pb::CreateAddressRequest {
                    request_id: request_id.to_owned(),
                    address: Some(address),
                },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }

    async fn get(&self, id: &str) -> Result<pb::Address, Status> {
        self.app
            .client()
            .await
            .get_address(authed(
                self.token,
                pb::GetAddressRequest { id: id.to_owned() },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }

    async fn list(
        &self,
        request: pb::ListAddressesRequest,
    ) -> Result<pb::ListAddressesResponse, Status> {
        self.app
            .client()
            .await
            .list_addresses(authed(self.token, request))
            .await
            .map(|r| r.into_inner())
    }

    /// The ids of the partner's addresses on the first page of 50.
    async fn list_ids(&self, partner_id: &str, show_deleted: bool) -> Vec<String> {
        self.list(pb::ListAddressesRequest {
            partner_id: partner_id.to_owned(),
            show_deleted,
            ..Default::default()
        })
        .await
        .unwrap()
        .addresses
        .into_iter()
        .map(|a| a.id)
        .collect()
    }

    async fn update(&self, address: pb::Address, paths: &[&str]) -> Result<pb::Address, Status> {
        self.app
            .client()
            .await
            .update_address(authed(
                self.token,
                pb::UpdateAddressRequest {
                    address: Some(address),
                    update_mask: Some(mask(paths)),
                },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }

    async fn delete(&self, id: &str, etag: &str) -> Result<pb::Address, Status> {
        self.app
            .client()
            .await
            .delete_address(authed(
                self.token,
                pb::DeleteAddressRequest {
                    id: id.to_owned(),
                    etag: etag.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }

    async fn undelete(&self, id: &str, etag: &str) -> Result<pb::Address, Status> {
        self.app
            .client()
            .await
            .undelete_address(authed(
                self.token,
                pb::UndeleteAddressRequest {
                    id: id.to_owned(),
                    etag: etag.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }
}

fn mask(paths: &[&str]) -> FieldMask {
    FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn at(latitude: f64, longitude: f64) -> Option<pb::LatLng> {
    Some(pb::LatLng {
        latitude,
        longitude,
    })
}

/// A complete shipping address in Berlin of `partner_id`.
fn berlin(partner_id: &str) -> pb::Address {
    pb::Address {
        partner_id: partner_id.to_owned(),
        kind: pb::AddressKind::Shipping as i32,
        line1: "Unter den Linden 1".to_owned(),
        line2: "Gate 3".to_owned(),
        city: "Berlin".to_owned(),
        region: "Berlin".to_owned(),
        postal_code: "10117".to_owned(),
        country_code: "DE".to_owned(),
        location: at(52.5170365, 13.3888599),
        ..Default::default()
    }
}

/// A minimal address of `kind` on `line1`.
fn of_kind(partner_id: &str, kind: pb::AddressKind, line1: &str) -> pb::Address {
    pb::Address {
        partner_id: partner_id.to_owned(),
        kind: kind as i32,
        line1: line1.to_owned(),
        city: "Hamburg".to_owned(),
        country_code: "DE".to_owned(),
        ..Default::default()
    }
}

/// A fresh partner's id.
async fn partner(app: &TestApp, name: &str) -> String {
    app.create_partner(acme(name, ""), &[]).await.id
}

async fn delete_partner(app: &TestApp, id: &str) {
    app.client()
        .await
        .delete_partner(authed(
            &app.admin_token,
            pb::DeletePartnerRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
}

/// An address row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    kind: String,
    line1: String,
    line2: String,
    city: String,
    region: String,
    postal_code: String,
    country_code: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    is_default: bool,
    version: i32,
    deleted: bool,
}

async fn row(db: &PgPool, id: &str) -> Row {
    sqlx::query_as(
        "SELECT kind, line1, line2, city, region, postal_code, country_code::text, latitude, \
             longitude, is_default, version, deleted_at IS NOT NULL AS deleted \
         FROM partner.addresses WHERE id = $1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(db)
    .await
    .unwrap()
}

async fn count_addresses(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM partner.addresses")
        .fetch_one(db)
        .await
        .unwrap()
}

/// Ids of the partner's live default addresses of `kind` (stored name), as stored.
async fn live_defaults(db: &PgPool, partner_id: &str, kind: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT id::text FROM partner.addresses \
         WHERE partner_id = $1 AND kind = $2 AND is_default AND deleted_at IS NULL ORDER BY id",
    )
    .bind(Uuid::parse_str(partner_id).unwrap())
    .bind(kind)
    .fetch_all(db)
    .await
    .unwrap()
}

#[track_caller]
fn assert_not_found(status: &Status, kind: &str) {
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(
        status.get_details_resource_info().map(|r| r.resource_type),
        Some(kind.to_owned())
    );
}

// Round trips ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_created_address_reads_back_and_is_listed_under_its_partner() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api
        .create(pb::Address {
            line1: "  Unter den Linden 1 ".to_owned(),
            country_code: "de".to_owned(),
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(created.partner_id, partner_id);
    assert_eq!(created.kind, pb::AddressKind::Shipping as i32);
    assert_eq!(created.line1, "Unter den Linden 1");
    assert_eq!(created.line2, "Gate 3");
    assert_eq!(created.city, "Berlin");
    assert_eq!(created.region, "Berlin");
    assert_eq!(created.postal_code, "10117");
    assert_eq!(created.country_code, "DE");
    assert_eq!(created.location, at(52.5170365, 13.3888599));
    assert!(!created.default);
    assert!(created.create_time.is_some());
    assert!(created.delete_time.is_none());
    assert!(!created.etag.is_empty());

    assert_eq!(api.get(&created.id).await.unwrap(), created);
    let listed = api
        .list(pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.addresses, std::slice::from_ref(&created));
    assert!(listed.next_page_token.is_empty());

    let stored = row(&app.db().await, &created.id).await;
    assert_eq!(stored.kind, "shipping");
    assert_eq!(stored.country_code, "DE");
    assert_eq!(
        (stored.latitude, stored.longitude),
        (Some(52.5170365), Some(13.3888599))
    );
}

#[tokio::test]
async fn an_address_without_a_position_has_none_and_zero_zero_is_a_position() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let nowhere = api
        .create(pb::Address {
            location: None,
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(nowhere.location, None);
    let null_island = api
        .create(pb::Address {
            location: at(0.0, 0.0),
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(null_island.location, at(0.0, 0.0));
    let db = app.db().await;
    let stored = row(&db, &nowhere.id).await;
    assert_eq!((stored.latitude, stored.longitude), (None, None));
    let stored = row(&db, &null_island.id).await;
    assert_eq!((stored.latitude, stored.longitude), (Some(0.0), Some(0.0)));
}

#[tokio::test]
async fn an_update_changes_only_the_masked_fields_and_moves_the_etag() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();

    let updated = api
        .update(
            pb::Address {
                id: created.id.clone(),
                etag: created.etag.clone(),
                line1: "Pariser Platz 1".to_owned(),
                postal_code: "10117 ".to_owned(),
                location: at(52.5162746, 13.3777041),
                // Not in the mask: must stay as they are.
                kind: pb::AddressKind::Billing as i32,
                city: "Potsdam".to_owned(),
                country_code: "AT".to_owned(),
                default: true,
                ..Default::default()
            },
            &["line1", "postal_code", "location"],
        )
        .await
        .unwrap();
    assert_eq!(updated.line1, "Pariser Platz 1");
    assert_eq!(updated.postal_code, "10117");
    assert_eq!(updated.location, at(52.5162746, 13.3777041));
    assert_eq!(updated.kind, pb::AddressKind::Shipping as i32);
    assert_eq!(updated.city, "Berlin");
    assert_eq!(updated.line2, "Gate 3");
    assert_eq!(updated.country_code, "DE");
    assert!(!updated.default);
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.create_time, created.create_time);
    assert_eq!(api.get(&created.id).await.unwrap(), updated);
    let db = app.db().await;
    assert_eq!(row(&db, &created.id).await.version, 2);

    // A masked location left unset forgets the position; masked empty optional lines clear.
    let cleared = api
        .update(
            pb::Address {
                id: created.id.clone(),
                etag: updated.etag.clone(),
                ..Default::default()
            },
            &["location", "line2", "region"],
        )
        .await
        .unwrap();
    assert_eq!(cleared.location, None);
    assert_eq!(cleared.line2, "");
    assert_eq!(cleared.region, "");
    assert_eq!(cleared.line1, "Pariser Platz 1");
    let stored = row(&db, &created.id).await;
    assert_eq!((stored.latitude, stored.longitude), (None, None));
    assert_eq!(stored.version, 3);
}

#[tokio::test]
async fn a_deleted_address_leaves_the_list_unless_deleted_ones_are_asked_for() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let kept = api
        .create(of_kind(&partner_id, pb::AddressKind::Billing, "Kept 1"))
        .await
        .unwrap();
    let created = api.create(berlin(&partner_id)).await.unwrap();

    let deleted = api.delete(&created.id, &created.etag).await.unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, created.etag);

    assert_eq!(api.list_ids(&partner_id, false).await, [kept.id.as_str()]);
    assert_eq!(
        api.list_ids(&partner_id, true).await,
        [kept.id.clone(), created.id.clone()]
    );
    let db = app.db().await;
    assert!(row(&db, &created.id).await.deleted);
    assert_eq!(count_addresses(&db).await, 2, "a soft delete keeps the row");

    // A deleted address is read-only until restored.
    let status = expect_code(
        api.update(
            pb::Address {
                id: created.id.clone(),
                city: "Ghost Town".to_owned(),
                ..Default::default()
            },
            &["city"],
        )
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, ADDRESS);
    assert_eq!(row(&db, &created.id).await.city, "Berlin");
}

#[tokio::test]
async fn getting_a_deleted_address_answers_it_with_its_delete_time() {
    // As GetPartner does (AIP-164): Get names one resource, so it answers deleted ones marked
    // as such; only List hides them.
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    let deleted = api.delete(&created.id, "").await.unwrap();
    let read = api.get(&created.id).await.unwrap();
    assert_eq!(read, deleted);
    assert!(read.delete_time.is_some());
}

#[tokio::test]
async fn undeleting_an_address_restores_it_to_get_and_list() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    let deleted = api.delete(&created.id, &created.etag).await.unwrap();

    let restored = api.undelete(&created.id, &deleted.etag).await.unwrap();
    assert!(restored.delete_time.is_none());
    assert_eq!(restored.line1, created.line1);
    assert_eq!(restored.location, created.location);
    assert_eq!(api.get(&created.id).await.unwrap(), restored);
    assert_eq!(
        api.list_ids(&partner_id, false).await,
        [created.id.as_str()]
    );
    let stored = row(&app.db().await, &created.id).await;
    assert!(!stored.deleted);
    assert_eq!(stored.version, 3);

    // A live address cannot be undeleted again.
    expect_code(
        api.undelete(&created.id, "").await,
        Code::FailedPrecondition,
    );
}

// Idempotency -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_request_id_twice_creates_one_address_and_answers_the_first_result() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let request_id = Uuid::now_v7().to_string();
    let first = api
        .create_with_request_id(&request_id, berlin(&partner_id))
        .await
        .unwrap();
    let again = api
        .create_with_request_id(&request_id, berlin(&partner_id))
        .await
        .unwrap();
    assert_eq!(again, first);
    let db = app.db().await;
    assert_eq!(count_addresses(&db).await, 1);

    // Without a request id every call is a new address.
    api.create_with_request_id("", berlin(&partner_id))
        .await
        .unwrap();
    api.create_with_request_id("", berlin(&partner_id))
        .await
        .unwrap();
    assert_eq!(count_addresses(&db).await, 3);
}

#[tokio::test]
async fn the_same_request_id_with_another_address_is_invalid_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let request_id = Uuid::now_v7().to_string();
    let first = api
        .create_with_request_id(&request_id, berlin(&partner_id))
        .await
        .unwrap();
    for other in [
        pb::Address {
            line1: "Pariser Platz 1".to_owned(),
            ..berlin(&partner_id)
        },
        pb::Address {
            location: at(48.1372, 11.5756),
            ..berlin(&partner_id)
        },
        pb::Address {
            default: true,
            ..berlin(&partner_id)
        },
    ] {
        let status = expect_code(
            api.create_with_request_id(&request_id, other).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["request_id"]);
    }
    let db = app.db().await;
    assert_eq!(count_addresses(&db).await, 1);
    let stored = row(&db, &first.id).await;
    assert_eq!(stored.line1, "Unter den Linden 1");
    assert!(!stored.is_default);
}

// Etags -------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_etag_on_update_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let other_default = api
        .create(pb::Address {
            default: true,
            ..of_kind(&partner_id, pb::AddressKind::Shipping, "Dock 1")
        })
        .await
        .unwrap();
    let created = api.create(berlin(&partner_id)).await.unwrap();
    let moved = api
        .update(
            pb::Address {
                id: created.id.clone(),
                etag: created.etag.clone(),
                line2: "Gate 4".to_owned(),
                ..Default::default()
            },
            &["line2"],
        )
        .await
        .unwrap();
    let db = app.db().await;
    let before = row(&db, &created.id).await;
    let other_before = row(&db, &other_default.id).await;

    // A stale write that would also have taken the default from another address.
    let status = expect_code(
        api.update(
            pb::Address {
                id: created.id.clone(),
                etag: created.etag.clone(),
                line1: "Lost Update 1".to_owned(),
                default: true,
                ..Default::default()
            },
            &["line1", "default"],
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("STALE_ETAG".to_owned())
    );
    assert_eq!(row(&db, &created.id).await, before);
    assert_eq!(row(&db, &other_default.id).await, other_before);
    assert_eq!(api.get(&created.id).await.unwrap(), moved);
}

#[tokio::test]
async fn a_stale_etag_on_delete_is_aborted_and_deletes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    api.update(
        pb::Address {
            id: created.id.clone(),
            etag: created.etag.clone(),
            region: "Mitte".to_owned(),
            ..Default::default()
        },
        &["region"],
    )
    .await
    .unwrap();
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    expect_code(api.delete(&created.id, &created.etag).await, Code::Aborted);
    assert_eq!(row(&db, &created.id).await, before);
    assert!(!before.deleted);
    assert_eq!(
        api.list_ids(&partner_id, false).await,
        [created.id.as_str()]
    );
}

// Validation --------------------------------------------------------------------------------------

#[tokio::test]
async fn an_address_with_bad_fields_lists_every_violation_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        Addresses::of_admin(&app)
            .create_with_request_id(
                "not-a-uuid",
                pb::Address {
                    partner_id: String::new(),
                    kind: pb::AddressKind::Unspecified as i32,
                    line1: " ".to_owned(),
                    line2: "x".repeat(201),
                    city: String::new(),
                    region: "x".repeat(101),
                    postal_code: "1".repeat(21),
                    country_code: "XX".to_owned(),
                    location: at(90.5, -180.5),
                    ..Default::default()
                },
            )
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "request_id",
            "address.partner_id",
            "address.kind",
            "address.line1",
            "address.line2",
            "address.city",
            "address.region",
            "address.postal_code",
            "address.country_code",
            "address.location.latitude",
            "address.location.longitude"
        ]
    );
    assert_eq!(count_addresses(&app.db().await).await, 0);
}

#[tokio::test]
async fn positions_must_be_on_the_earth() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    for (latitude, longitude, fields) in [
        (90.000001, 0.0, &["address.location.latitude"][..]),
        (-91.0, 0.0, &["address.location.latitude"][..]),
        (0.0, 180.000001, &["address.location.longitude"][..]),
        (0.0, -181.0, &["address.location.longitude"][..]),
        (f64::NAN, 0.0, &["address.location.latitude"][..]),
        (0.0, f64::INFINITY, &["address.location.longitude"][..]),
        (
            f64::NEG_INFINITY,
            f64::NAN,
            &["address.location.latitude", "address.location.longitude"][..],
        ),
    ] {
        let status = expect_code(
            api.create(pb::Address {
                location: at(latitude, longitude),
                ..berlin(&partner_id)
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            fields,
            "({latitude}, {longitude})"
        );
    }
    assert_eq!(count_addresses(&app.db().await).await, 0);

    // The edges are on the earth.
    for (latitude, longitude) in [(90.0, 180.0), (-90.0, -180.0)] {
        let created = api
            .create(pb::Address {
                location: at(latitude, longitude),
                ..berlin(&partner_id)
            })
            .await
            .unwrap();
        assert_eq!(created.location, at(latitude, longitude));
    }
}

#[tokio::test]
async fn the_database_refuses_half_a_position() {
    // LatLng carries both numbers, so the wire cannot send only one; the table still refuses a
    // latitude without a longitude and the other way round.
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let created = Addresses::of_admin(&app)
        .create(berlin(&partner_id))
        .await
        .unwrap();
    let db = app.db().await;
    let id = Uuid::parse_str(&created.id).unwrap();
    for half in [
        "UPDATE partner.addresses SET longitude = NULL WHERE id = $1",
        "UPDATE partner.addresses SET latitude = NULL WHERE id = $1",
        "UPDATE partner.addresses SET latitude = 91 WHERE id = $1",
        "UPDATE partner.addresses SET longitude = -181 WHERE id = $1",
    ] {
        let err = sqlx::query(half).bind(id).execute(&db).await.unwrap_err();
        let err = err.as_database_error().expect("a database error");
        assert_eq!(err.code().as_deref(), Some("23514"), "{half}: {err}");
    }
    let stored = row(&db, &created.id).await;
    assert_eq!(
        (stored.latitude, stored.longitude),
        (Some(52.5170365), Some(13.3888599))
    );
}

#[tokio::test]
async fn country_codes_must_be_assigned_iso_codes() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    for bad in ["", "D", "DEU", "XX", "12", "D3"] {
        let status = expect_code(
            api.create(pb::Address {
                country_code: bad.to_owned(),
                ..berlin(&partner_id)
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            ["address.country_code"],
            "{bad:?}"
        );
    }
    assert_eq!(count_addresses(&app.db().await).await, 0);
    let created = api
        .create(pb::Address {
            country_code: " at ".to_owned(),
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(created.country_code, "AT");
}

#[tokio::test]
async fn the_kind_must_be_a_known_kind() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    for kind in [pb::AddressKind::Unspecified as i32, 4, -1] {
        let status = expect_code(
            api.create(pb::Address {
                kind,
                ..berlin(&partner_id)
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["address.kind"], "{kind}");
    }
    assert_eq!(count_addresses(&app.db().await).await, 0);
}

#[tokio::test]
async fn lines_are_bounded_in_characters_and_line1_and_city_are_required() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    // Multi-byte characters count once.
    let longest = api
        .create(pb::Address {
            line1: "ß".repeat(200),
            line2: "ä".repeat(200),
            city: "ö".repeat(100),
            region: "ü".repeat(100),
            postal_code: "é".repeat(20),
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(longest.line1.chars().count(), 200);
    assert_eq!(longest.postal_code.chars().count(), 20);

    let status = expect_code(
        api.create(pb::Address {
            line1: "ß".repeat(201),
            line2: "ä".repeat(201),
            city: "ö".repeat(101),
            region: "ü".repeat(101),
            postal_code: "é".repeat(21),
            ..berlin(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "address.line1",
            "address.line2",
            "address.city",
            "address.region",
            "address.postal_code"
        ]
    );
    let status = expect_code(
        api.create(pb::Address {
            line1: "  ".to_owned(),
            city: String::new(),
            line2: String::new(),
            region: String::new(),
            postal_code: String::new(),
            ..berlin(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["address.line1", "address.city"]);
    let status = expect_code(
        api.create(pb::Address {
            line1: "Line\u{0000}1".to_owned(),
            ..berlin(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["address.line1"]);
    assert_eq!(count_addresses(&app.db().await).await, 1);
}

#[tokio::test]
async fn an_update_with_bad_fields_lists_every_violation_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    let status = expect_code(
        api.update(
            pb::Address {
                id: created.id.clone(),
                etag: created.etag.clone(),
                kind: 0,
                line1: String::new(),
                city: "x".repeat(101),
                country_code: "ZZ".to_owned(),
                location: at(-90.1, 181.0),
                ..Default::default()
            },
            &["kind", "line1", "city", "country_code", "location"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "address.kind",
            "address.line1",
            "address.city",
            "address.country_code",
            "address.location.latitude",
            "address.location.longitude"
        ]
    );

    let status = expect_code(
        api.update(
            pb::Address {
                id: created.id.clone(),
                partner_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
            &["city", "partner_id", "location.latitude"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );

    let status = expect_code(
        api.update(
            pb::Address {
                id: created.id.clone(),
                ..Default::default()
            },
            &[],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["update_mask"]);

    let status = expect_code(
        api.update(
            pb::Address {
                id: "berlin".to_owned(),
                etag: "v1".to_owned(),
                ..Default::default()
            },
            &["city"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["address.id", "address.etag", "address.city"]
    );

    assert_eq!(row(&db, &created.id).await, before);
}

#[tokio::test]
async fn an_address_of_an_unknown_partner_is_not_found_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let unknown = Uuid::now_v7().to_string();
    let api = Addresses::of_admin(&app);
    let status = expect_code(api.create(berlin(&unknown)).await, Code::NotFound);
    assert_not_found(&status, PARTNER);
    assert_eq!(
        status.get_details_resource_info().map(|r| r.resource_name),
        Some(unknown.clone())
    );
    let status = expect_code(
        api.list(pb::ListAddressesRequest {
            partner_id: unknown,
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, PARTNER);
    let db = app.db().await;
    assert_eq!(count_addresses(&db).await, 0);
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM partner.idempotency_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(claims, 0, "a failed create leaves no idempotency claim");
}

#[tokio::test]
async fn an_unknown_address_is_not_found() {
    let app = TestApp::spawn().await;
    let api = Addresses::of_admin(&app);
    let unknown = Uuid::now_v7().to_string();
    assert_not_found(&api.get(&unknown).await.unwrap_err(), ADDRESS);
    assert_not_found(&api.delete(&unknown, "").await.unwrap_err(), ADDRESS);
    assert_not_found(&api.undelete(&unknown, "").await.unwrap_err(), ADDRESS);
    let status = expect_code(
        api.update(
            pb::Address {
                id: unknown,
                city: "Nowhere".to_owned(),
                ..Default::default()
            },
            &["city"],
        )
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, ADDRESS);
}

// One default per partner and kind -------------------------------------------------------------------

#[tokio::test]
async fn a_new_default_demotes_the_previous_default_of_its_kind_only() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let other_partner = partner(&app, "Globex").await;
    let api = Addresses::of_admin(&app);
    let default = |kind, line1: &str, partner_id: &str| pb::Address {
        default: true,
        ..of_kind(partner_id, kind, line1)
    };
    let first = api
        .create(default(pb::AddressKind::Billing, "Billing 1", &partner_id))
        .await
        .unwrap();
    let shipping = api
        .create(default(pb::AddressKind::Shipping, "Dock 1", &partner_id))
        .await
        .unwrap();
    let elsewhere = api
        .create(default(
            pb::AddressKind::Billing,
            "Globex 1",
            &other_partner,
        ))
        .await
        .unwrap();
    assert!(first.default);

    let second = api
        .create(default(pb::AddressKind::Billing, "Billing 2", &partner_id))
        .await
        .unwrap();
    assert!(second.default);
    let demoted = api.get(&first.id).await.unwrap();
    assert!(!demoted.default);
    assert_ne!(demoted.etag, first.etag, "demotion is a change");
    assert!(api.get(&shipping.id).await.unwrap().default, "another kind");
    assert!(
        api.get(&elsewhere.id).await.unwrap().default,
        "another partner"
    );
    let db = app.db().await;
    assert_eq!(
        live_defaults(&db, &partner_id, "billing").await,
        [second.id.as_str()]
    );
    assert_eq!(
        live_defaults(&db, &partner_id, "shipping").await,
        [shipping.id.as_str()]
    );
    assert_eq!(
        live_defaults(&db, &other_partner, "billing").await,
        [elsewhere.id.as_str()]
    );

    // Promoting through an update demotes too.
    let promoted = api
        .update(
            pb::Address {
                id: first.id.clone(),
                etag: demoted.etag.clone(),
                default: true,
                ..Default::default()
            },
            &["default"],
        )
        .await
        .unwrap();
    assert!(promoted.default);
    assert!(!api.get(&second.id).await.unwrap().default);
    assert_eq!(
        live_defaults(&db, &partner_id, "billing").await,
        [first.id.as_str()]
    );

    // A default that changes kind takes the new kind's default role.
    let moved = api
        .update(
            pb::Address {
                id: shipping.id.clone(),
                kind: pb::AddressKind::Billing as i32,
                ..Default::default()
            },
            &["kind"],
        )
        .await
        .unwrap();
    assert!(moved.default);
    assert_eq!(moved.kind, pb::AddressKind::Billing as i32);
    assert!(!api.get(&first.id).await.unwrap().default);
    assert_eq!(
        live_defaults(&db, &partner_id, "billing").await,
        [shipping.id.as_str()]
    );
    assert!(live_defaults(&db, &partner_id, "shipping").await.is_empty());
}

#[tokio::test]
async fn concurrent_promotions_leave_exactly_one_default_per_kind() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let results = futures::future::join_all((0..8).map(|i| {
        api.create(pb::Address {
            default: true,
            ..of_kind(&partner_id, pb::AddressKind::Billing, &format!("Racer {i}"))
        })
    }))
    .await;
    for result in &results {
        if let Err(status) = result {
            // The loser of a race for the flag may simply retry.
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
            assert_eq!(
                status.get_details_error_info().map(|i| i.reason),
                Some("CONCURRENT_UPDATE".to_owned())
            );
        }
    }
    let created = results.iter().filter(|r| r.is_ok()).count() as i64;
    let db = app.db().await;
    assert_eq!(count_addresses(&db).await, created);
    assert_eq!(live_defaults(&db, &partner_id, "billing").await.len(), 1);
}

#[tokio::test]
async fn a_restored_former_default_does_not_take_the_role_back() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let first = api
        .create(pb::Address {
            default: true,
            ..berlin(&partner_id)
        })
        .await
        .unwrap();
    api.delete(&first.id, "").await.unwrap();
    let second = api
        .create(pb::Address {
            default: true,
            ..of_kind(&partner_id, pb::AddressKind::Shipping, "Dock 2")
        })
        .await
        .unwrap();
    let restored = api.undelete(&first.id, "").await.unwrap();
    assert!(!restored.default);
    assert!(api.get(&second.id).await.unwrap().default);
    assert_eq!(
        live_defaults(&app.db().await, &partner_id, "shipping").await,
        [second.id.as_str()]
    );
}

#[tokio::test]
async fn the_database_refuses_a_second_live_default_of_a_kind() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let default = api
        .create(pb::Address {
            default: true,
            ..of_kind(&partner_id, pb::AddressKind::Pickup, "Yard 1")
        })
        .await
        .unwrap();
    let other = api
        .create(of_kind(&partner_id, pb::AddressKind::Pickup, "Yard 2"))
        .await
        .unwrap();
    let db = app.db().await;

    let err = sqlx::query("UPDATE partner.addresses SET is_default = true WHERE id = $1")
        .bind(Uuid::parse_str(&other.id).unwrap())
        .execute(&db)
        .await
        .unwrap_err();
    let err = err.as_database_error().expect("a database error");
    assert_eq!(err.code().as_deref(), Some("23505"));
    assert_eq!(err.constraint(), Some("addresses_one_default"));
    assert_eq!(
        live_defaults(&db, &partner_id, "pickup").await,
        [default.id.as_str()]
    );

    // Only live addresses count: a deleted default leaves room for another.
    sqlx::query("UPDATE partner.addresses SET deleted_at = now() WHERE id = $1")
        .bind(Uuid::parse_str(&default.id).unwrap())
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE partner.addresses SET is_default = true WHERE id = $1")
        .bind(Uuid::parse_str(&other.id).unwrap())
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        live_defaults(&db, &partner_id, "pickup").await,
        [other.id.as_str()]
    );
}

// Listing ---------------------------------------------------------------------------------------------

/// Every page of a listing, as ids per page.
async fn pages(api: &Addresses<'_>, request: pb::ListAddressesRequest) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = api
            .list(pb::ListAddressesRequest {
                page_token: token.clone(),
                ..request.clone()
            })
            .await
            .unwrap();
        pages.push(page.addresses.iter().map(|a| a.id.clone()).collect());
        token = page.next_page_token;
        if token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
}

#[tokio::test]
async fn addresses_page_through_without_duplicates_or_gaps() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let other_partner = partner(&app, "Globex").await;
    let api = Addresses::of_admin(&app);
    use pb::AddressKind::{Billing, Pickup, Shipping};
    let mut created = Vec::new();
    for (kind, line1, default) in [
        (Shipping, "S1", false),
        (Billing, "B1", false),
        (Pickup, "P1", true),
        (Shipping, "S2", false),
        (Billing, "B2", true),
        (Pickup, "P2", false),
        (Shipping, "S3", false),
    ] {
        created.push(
            api.create(pb::Address {
                default,
                ..of_kind(&partner_id, kind, line1)
            })
            .await
            .unwrap(),
        );
    }
    api.create(of_kind(&other_partner, Billing, "G1"))
        .await
        .unwrap();
    let id = |line1: &str| {
        created
            .iter()
            .find(|a| a.line1 == line1)
            .unwrap()
            .id
            .clone()
    };
    // Defaults first, then by kind, then in order of creation.
    let expected = [
        id("B2"),
        id("P1"),
        id("B1"),
        id("P2"),
        id("S1"),
        id("S2"),
        id("S3"),
    ];

    let all_pages = pages(
        &api,
        pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        all_pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    let all = all_pages.concat();
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 7, "duplicates");
    assert_eq!(all, expected);

    // One kind only, in pages of 2.
    let shipping = pages(
        &api,
        pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            page_size: 2,
            filter: "kind = ADDRESS_KIND_SHIPPING".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(shipping, [vec![id("S1"), id("S2")], vec![id("S3")]]);
}

#[tokio::test]
async fn a_page_token_continues_only_the_listing_it_came_from() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    for line1 in ["S1", "S2", "S3"] {
        api.create(of_kind(&partner_id, pb::AddressKind::Shipping, line1))
            .await
            .unwrap();
    }
    let first = api
        .list(pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            filter: "kind = ADDRESS_KIND_SHIPPING".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());
    for request in [
        pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            filter: "kind = ADDRESS_KIND_SHIPPING".to_owned(),
            show_deleted: true,
        },
    ] {
        let status = expect_code(api.list(request).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
}

#[tokio::test]
async fn only_a_kind_filter_is_understood() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    for filter in [
        "kind != ADDRESS_KIND_SHIPPING",
        "kind = ADDRESS_KIND_UNSPECIFIED",
        "kind = SHIPPING",
        "city = \"Berlin\"",
        "kind = ADDRESS_KIND_SHIPPING AND kind = ADDRESS_KIND_BILLING",
        "kind =",
    ] {
        let status = expect_code(
            api.list(pb::ListAddressesRequest {
                partner_id: partner_id.clone(),
                filter: filter.to_owned(),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["filter"], "{filter}");
    }
}

// Who sees an address ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_address_cannot_be_added_to_a_deleted_partner() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    delete_partner(&app, &partner_id).await;
    let status = expect_code(
        Addresses::of_admin(&app).create(berlin(&partner_id)).await,
        Code::NotFound,
    );
    assert_not_found(&status, PARTNER);
    assert_eq!(count_addresses(&app.db().await).await, 0);
}

#[tokio::test]
async fn an_address_of_a_deleted_partner_is_not_found() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    delete_partner(&app, &partner_id).await;
    let status = expect_code(api.get(&created.id).await, Code::NotFound);
    assert_not_found(&status, ADDRESS);
}

#[tokio::test]
async fn an_address_of_a_deleted_partner_cannot_be_changed() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Addresses::of_admin(&app);
    let created = api.create(berlin(&partner_id)).await.unwrap();
    delete_partner(&app, &partner_id).await;
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    let update = api
        .update(
            pb::Address {
                id: created.id.clone(),
                city: "Changed While Hidden".to_owned(),
                default: true,
                ..Default::default()
            },
            &["city", "default"],
        )
        .await;
    assert_not_found(&expect_code(update, Code::NotFound), ADDRESS);
    let delete = api.delete(&created.id, "").await;
    assert_not_found(&expect_code(delete, Code::NotFound), ADDRESS);
    assert_eq!(row(&db, &created.id).await, before);
}

#[tokio::test]
async fn an_address_in_another_tenant_is_not_found_and_cannot_be_touched() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let created = Addresses::of_admin(&app)
        .create(berlin(&partner_id))
        .await
        .unwrap();
    let (_, stranger_token) = app.identity.other_tenant("Initech").await.unwrap();
    let stranger = Addresses::with_token(&app, &stranger_token);
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    assert_not_found(&stranger.get(&created.id).await.unwrap_err(), ADDRESS);
    let status = stranger
        .list(pb::ListAddressesRequest {
            partner_id: partner_id.clone(),
            show_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_found(&status, PARTNER);
    let status = stranger
        .update(
            pb::Address {
                id: created.id.clone(),
                city: "Hijacked".to_owned(),
                ..Default::default()
            },
            &["city"],
        )
        .await
        .unwrap_err();
    assert_not_found(&status, ADDRESS);
    assert_not_found(
        &stranger.delete(&created.id, "").await.unwrap_err(),
        ADDRESS,
    );
    assert_not_found(
        &stranger.create(berlin(&partner_id)).await.unwrap_err(),
        PARTNER,
    );
    assert_eq!(row(&db, &created.id).await, before);
    assert_eq!(count_addresses(&db).await, 1);
}
