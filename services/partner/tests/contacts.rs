//! Contacts end to end: the round trip, idempotent creates, etags, validation, e-mail and phone
//! sealed at rest, the one primary contact per partner, paging, and who may see a contact.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{TestApp, acme, authed, expect_code, violated_fields};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::partner::v1 as pb;
use prost_types::FieldMask;
use sqlx::PgPool;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const CONTACT: &str = "logistics.partner.v1.Contact";
const PARTNER: &str = "logistics.partner.v1.Partner";

/// The contact calls, made with one caller's token.
struct Contacts<'a> {
    app: &'a TestApp,
    token: &'a str,
}

impl<'a> Contacts<'a> {
    fn of_admin(app: &'a TestApp) -> Self {
        Self::with_token(app, &app.admin_token)
    }

    fn with_token(app: &'a TestApp, token: &'a str) -> Self {
        Self { app, token }
    }

    async fn create(&self, contact: pb::Contact) -> Result<pb::Contact, Status> {
        self.app.create_contact_as(self.token, contact).await
    }

    async fn create_with_request_id(
        &self,
        request_id: &str,
        contact: pb::Contact,
    ) -> Result<pb::Contact, Status> {
        self.app
            .client()
            .await
            .create_contact(authed(
                self.token,
                pb::CreateContactRequest {
                    request_id: request_id.to_owned(),
                    contact: Some(contact),
                },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }

    async fn get(&self, id: &str) -> Result<pb::Contact, Status> {
        self.app
            .client()
            .await
            .get_contact(authed(
                self.token,
                pb::GetContactRequest { id: id.to_owned() },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }

    async fn list(
        &self,
        request: pb::ListContactsRequest,
    ) -> Result<pb::ListContactsResponse, Status> {
        self.app
            .client()
            .await
            .list_contacts(authed(self.token, request))
            .await
            .map(|r| r.into_inner())
    }

    /// The ids of the partner's contacts on the first page of 50.
    async fn list_ids(&self, partner_id: &str, show_deleted: bool) -> Vec<String> {
        self.list(pb::ListContactsRequest {
            partner_id: partner_id.to_owned(),
            show_deleted,
            ..Default::default()
        })
        .await
        .unwrap()
        .contacts
        .into_iter()
        .map(|c| c.id)
        .collect()
    }

    async fn update(&self, contact: pb::Contact, paths: &[&str]) -> Result<pb::Contact, Status> {
        self.app
            .client()
            .await
            .update_contact(authed(
                self.token,
                pb::UpdateContactRequest {
                    contact: Some(contact),
                    update_mask: Some(mask(paths)),
                },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }

    async fn delete(&self, id: &str, etag: &str) -> Result<pb::Contact, Status> {
        self.app
            .client()
            .await
            .delete_contact(authed(
                self.token,
                pb::DeleteContactRequest {
                    id: id.to_owned(),
                    etag: etag.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }

    async fn undelete(&self, id: &str, etag: &str) -> Result<pb::Contact, Status> {
        self.app
            .client()
            .await
            .undelete_contact(authed(
                self.token,
                pb::UndeleteContactRequest {
                    id: id.to_owned(),
                    etag: etag.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }
}

fn mask(paths: &[&str]) -> FieldMask {
    FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// A reachable contact of `partner_id`.
fn ada(partner_id: &str) -> pb::Contact {
    pb::Contact {
        partner_id: partner_id.to_owned(),
        name: "Ada Lovelace".to_owned(),
        job_title: "Accounts payable".to_owned(),
        email: "ada.lovelace@example.com".to_owned(),
        phone: "+4930123456".to_owned(),
        ..Default::default()
    }
}

/// A contact named `name` with only an e-mail.
fn named(partner_id: &str, name: &str) -> pb::Contact {
    pb::Contact {
        partner_id: partner_id.to_owned(),
        name: name.to_owned(),
        email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
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

/// A contact row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    name: String,
    job_title: String,
    is_primary: bool,
    version: i32,
    deleted: bool,
    email_ciphertext: Option<Vec<u8>>,
    phone_ciphertext: Option<Vec<u8>>,
}

async fn row(db: &PgPool, id: &str) -> Row {
    sqlx::query_as(
        "SELECT name, job_title, is_primary, version, deleted_at IS NOT NULL AS deleted, \
             email_ciphertext, phone_ciphertext \
         FROM partner.contacts WHERE id = $1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(db)
    .await
    .unwrap()
}

async fn count_contacts(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM partner.contacts")
        .fetch_one(db)
        .await
        .unwrap()
}

/// Ids of the partner's live primary contacts, as stored.
async fn live_primaries(db: &PgPool, partner_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT id::text FROM partner.contacts \
         WHERE partner_id = $1 AND is_primary AND deleted_at IS NULL ORDER BY id",
    )
    .bind(Uuid::parse_str(partner_id).unwrap())
    .fetch_all(db)
    .await
    .unwrap()
}

fn hex(plain: &str) -> String {
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Asserts neither `plain` nor its bytes in hex appear in `stored` (a row as text).
#[track_caller]
fn assert_sealed(stored: &str, plain: &str) {
    assert!(
        !stored.contains(plain),
        "{plain} stored in plain text: {stored}"
    );
    assert!(
        !stored.contains(&hex(plain)),
        "{plain} stored as plain bytes: {stored}"
    );
}

/// Asserts that nothing the caller sees of `status` repeats `plain`.
#[track_caller]
fn assert_not_echoed(status: &Status, plain: &str) {
    assert!(
        !status.message().contains(plain),
        "message repeats {plain}: {}",
        status.message()
    );
    assert!(
        !String::from_utf8_lossy(status.details()).contains(plain),
        "details repeat {plain}: {status:?}"
    );
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
async fn a_created_contact_reads_back_and_is_listed_under_its_partner() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api
        .create(pb::Contact {
            phone: "+49 (30) 123-456".to_owned(),
            email: "  ada.lovelace@example.com ".to_owned(),
            ..ada(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(created.partner_id, partner_id);
    assert_eq!(created.name, "Ada Lovelace");
    assert_eq!(created.job_title, "Accounts payable");
    assert_eq!(created.email, "ada.lovelace@example.com");
    assert_eq!(created.phone, "+4930123456");
    assert!(!created.primary);
    assert!(created.create_time.is_some());
    assert!(created.delete_time.is_none());
    assert!(!created.etag.is_empty());

    assert_eq!(api.get(&created.id).await.unwrap(), created);
    let listed = api
        .list(pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.contacts, [created]);
    assert!(listed.next_page_token.is_empty());
}

#[tokio::test]
async fn an_update_changes_only_the_masked_fields_and_moves_the_etag() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();

    let updated = api
        .update(
            pb::Contact {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Augusta Ada King".to_owned(),
                phone: "+4940999999".to_owned(),
                // Not in the mask: must stay as they are.
                job_title: "Ignored".to_owned(),
                email: "ignored@example.com".to_owned(),
                primary: true,
                ..Default::default()
            },
            &["name", "phone"],
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Augusta Ada King");
    assert_eq!(updated.phone, "+4940999999");
    assert_eq!(updated.job_title, created.job_title);
    assert_eq!(updated.email, created.email);
    assert!(!updated.primary);
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.create_time, created.create_time);
    assert_eq!(api.get(&created.id).await.unwrap(), updated);

    let db = app.db().await;
    let stored = row(&db, &created.id).await;
    assert_eq!(stored.name, "Augusta Ada King");
    assert_eq!(stored.job_title, "Accounts payable");
    assert_eq!(stored.version, 2);

    // Clearing the e-mail is fine while the phone remains.
    let cleared = api
        .update(
            pb::Contact {
                id: created.id.clone(),
                etag: updated.etag.clone(),
                ..Default::default()
            },
            &["email"],
        )
        .await
        .unwrap();
    assert_eq!(cleared.email, "");
    assert_eq!(cleared.phone, "+4940999999");
    assert_eq!(row(&db, &created.id).await.email_ciphertext, None);
}

#[tokio::test]
async fn a_deleted_contact_leaves_the_list_unless_deleted_ones_are_asked_for() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let kept = api.create(named(&partner_id, "Bob")).await.unwrap();
    let created = api.create(ada(&partner_id)).await.unwrap();

    let deleted = api.delete(&created.id, &created.etag).await.unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, created.etag);

    assert_eq!(api.list_ids(&partner_id, false).await, [kept.id.as_str()]);
    assert_eq!(
        api.list_ids(&partner_id, true).await,
        [created.id.clone(), kept.id.clone()]
    );
    let db = app.db().await;
    assert!(row(&db, &created.id).await.deleted);
    assert_eq!(count_contacts(&db).await, 2, "a soft delete keeps the row");

    // A deleted contact is read-only until restored.
    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                name: "Ghost".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, CONTACT);
    assert_eq!(row(&db, &created.id).await.name, "Ada Lovelace");
}

#[tokio::test]
async fn getting_a_deleted_contact_answers_it_with_its_delete_time() {
    // As GetPartner does (AIP-164): Get names one resource, so it answers deleted ones marked
    // as such; only List hides them.
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let deleted = api.delete(&created.id, "").await.unwrap();
    let read = api.get(&created.id).await.unwrap();
    assert_eq!(read, deleted);
    assert!(read.delete_time.is_some());
}

#[tokio::test]
async fn undeleting_a_contact_restores_it_to_get_and_list() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let deleted = api.delete(&created.id, &created.etag).await.unwrap();

    let restored = api.undelete(&created.id, &deleted.etag).await.unwrap();
    assert!(restored.delete_time.is_none());
    assert_eq!(restored.email, created.email);
    assert_eq!(restored.phone, created.phone);
    assert_eq!(api.get(&created.id).await.unwrap(), restored);
    assert_eq!(
        api.list_ids(&partner_id, false).await,
        [created.id.as_str()]
    );
    let db = app.db().await;
    let stored = row(&db, &created.id).await;
    assert!(!stored.deleted);
    assert_eq!(stored.version, 3);

    // A live contact cannot be undeleted again.
    expect_code(
        api.undelete(&created.id, "").await,
        Code::FailedPrecondition,
    );
}

// Idempotency -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_request_id_twice_creates_one_contact_and_answers_the_first_result() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let request_id = Uuid::now_v7().to_string();
    let first = api
        .create_with_request_id(&request_id, ada(&partner_id))
        .await
        .unwrap();
    let again = api
        .create_with_request_id(&request_id, ada(&partner_id))
        .await
        .unwrap();
    assert_eq!(again, first);
    let db = app.db().await;
    assert_eq!(count_contacts(&db).await, 1);

    // Without a request id every call is a new contact.
    api.create_with_request_id("", ada(&partner_id))
        .await
        .unwrap();
    api.create_with_request_id("", ada(&partner_id))
        .await
        .unwrap();
    assert_eq!(count_contacts(&db).await, 3);
}

#[tokio::test]
async fn the_same_request_id_with_another_contact_is_invalid_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let request_id = Uuid::now_v7().to_string();
    let first = api
        .create_with_request_id(&request_id, ada(&partner_id))
        .await
        .unwrap();
    let status = expect_code(
        api.create_with_request_id(
            &request_id,
            pb::Contact {
                name: "Charles Babbage".to_owned(),
                ..ada(&partner_id)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["request_id"]);
    let db = app.db().await;
    assert_eq!(count_contacts(&db).await, 1);
    assert_eq!(row(&db, &first.id).await.name, "Ada Lovelace");
}

#[tokio::test]
async fn the_same_request_id_with_another_email_or_phone_is_invalid() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let request_id = Uuid::now_v7().to_string();
    api.create_with_request_id(&request_id, ada(&partner_id))
        .await
        .unwrap();
    let other_email = api
        .create_with_request_id(
            &request_id,
            pb::Contact {
                email: "someone.else@example.com".to_owned(),
                ..ada(&partner_id)
            },
        )
        .await;
    let status = expect_code(other_email, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["request_id"]);
    let other_phone = api
        .create_with_request_id(
            &request_id,
            pb::Contact {
                phone: "+4940999999".to_owned(),
                ..ada(&partner_id)
            },
        )
        .await;
    let status = expect_code(other_phone, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["request_id"]);
}

// Etags -------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_etag_on_update_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let renamed = api
        .update(
            pb::Contact {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Ada King".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await
        .unwrap();
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Lost Update".to_owned(),
                email: "lost@example.com".to_owned(),
                primary: true,
                ..Default::default()
            },
            &["name", "email", "primary"],
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("STALE_ETAG".to_owned())
    );
    assert_eq!(row(&db, &created.id).await, before);
    assert_eq!(api.get(&created.id).await.unwrap(), renamed);
}

#[tokio::test]
async fn a_stale_etag_on_delete_is_aborted_and_deletes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    api.update(
        pb::Contact {
            id: created.id.clone(),
            etag: created.etag.clone(),
            job_title: "Treasury".to_owned(),
            ..Default::default()
        },
        &["job_title"],
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

#[tokio::test]
async fn an_etag_the_service_never_issued_is_invalid() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let status = expect_code(
        api.delete(&created.id, "W/\"1\"").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["etag"]);
    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                etag: "1".to_owned(),
                name: "X".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.etag"]);
    let db = app.db().await;
    assert_eq!(row(&db, &created.id).await.version, 1);
}

// Validation --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_contact_with_bad_fields_lists_every_violation_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        Contacts::of_admin(&app)
            .create_with_request_id(
                "not-a-uuid",
                pb::Contact {
                    partner_id: "acme".to_owned(),
                    name: "   ".to_owned(),
                    job_title: "x".repeat(101),
                    email: "ada.lovelace@example".to_owned(),
                    phone: "030 123456".to_owned(),
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
            "contact.partner_id",
            "contact.name",
            "contact.job_title",
            "contact.email",
            "contact.phone"
        ]
    );
    assert_eq!(count_contacts(&app.db().await).await, 0);
}

#[tokio::test]
async fn emails_must_look_like_an_address() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let too_long = format!("{}@example.com", "a".repeat(250));
    for bad in [
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada lovelace@example.com",
        "ada@lovelace@example.com",
        too_long.as_str(),
    ] {
        let status = expect_code(
            api.create(pb::Contact {
                email: bad.to_owned(),
                ..ada(&partner_id)
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["contact.email"], "{bad:?}");
    }
    assert_eq!(count_contacts(&app.db().await).await, 0);
}

#[tokio::test]
async fn phones_must_be_in_e164_form() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    for bad in [
        "030123456",
        "0049 30 123456",
        "+0301234567",
        "+49",
        "+4930123456789012",
        "+49abc12345",
        "+49 30 123456 ext 7",
    ] {
        let status = expect_code(
            api.create(pb::Contact {
                phone: bad.to_owned(),
                ..ada(&partner_id)
            })
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["contact.phone"], "{bad:?}");
    }
    assert_eq!(count_contacts(&app.db().await).await, 0);
}

#[tokio::test]
async fn names_and_job_titles_are_bounded_in_characters() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    // Multi-byte characters count once.
    let longest = api
        .create(pb::Contact {
            name: "ß".repeat(200),
            job_title: "é".repeat(100),
            ..ada(&partner_id)
        })
        .await
        .unwrap();
    assert_eq!(longest.name.chars().count(), 200);
    assert_eq!(longest.job_title.chars().count(), 100);

    let status = expect_code(
        api.create(pb::Contact {
            name: "ß".repeat(201),
            job_title: "é".repeat(101),
            ..ada(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["contact.name", "contact.job_title"]
    );
    let status = expect_code(
        api.create(pb::Contact {
            name: String::new(),
            ..ada(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.name"]);
    let status = expect_code(
        api.create(pb::Contact {
            name: "Ada\u{0007}".to_owned(),
            ..ada(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.name"]);
    assert_eq!(count_contacts(&app.db().await).await, 1);
}

#[tokio::test]
async fn a_contact_needs_an_email_or_a_phone() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let status = expect_code(
        api.create(pb::Contact {
            email: String::new(),
            phone: " ".to_owned(),
            ..ada(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.email"]);
    let db = app.db().await;
    assert_eq!(count_contacts(&db).await, 0);

    // Either one alone is enough.
    let by_mail = api
        .create(pb::Contact {
            phone: String::new(),
            ..ada(&partner_id)
        })
        .await
        .unwrap();
    api.create(pb::Contact {
        email: String::new(),
        ..ada(&partner_id)
    })
    .await
    .unwrap();

    // Clearing the only way to reach a contact is refused too.
    let before = row(&db, &by_mail.id).await;
    let status = expect_code(
        api.update(
            pb::Contact {
                id: by_mail.id.clone(),
                etag: by_mail.etag.clone(),
                ..Default::default()
            },
            &["email"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.email"]);
    assert_eq!(row(&db, &by_mail.id).await, before);
}

#[tokio::test]
async fn an_update_with_bad_fields_lists_every_violation_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: String::new(),
                job_title: "x".repeat(101),
                email: "nobody".to_owned(),
                phone: "12345".to_owned(),
                ..Default::default()
            },
            &["name", "job_title", "email", "phone"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "contact.name",
            "contact.job_title",
            "contact.email",
            "contact.phone"
        ]
    );

    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                partner_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
            &["name", "partner_id", "create_time"],
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
            pb::Contact {
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
            pb::Contact {
                id: "ada".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.id", "contact.name"]);

    assert_eq!(row(&db, &created.id).await, before);
}

#[tokio::test]
async fn a_contact_of_an_unknown_partner_is_not_found_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let unknown = Uuid::now_v7().to_string();
    let api = Contacts::of_admin(&app);
    let status = expect_code(api.create(ada(&unknown)).await, Code::NotFound);
    assert_not_found(&status, PARTNER);
    assert_eq!(
        status.get_details_resource_info().map(|r| r.resource_name),
        Some(unknown.clone())
    );
    let status = expect_code(
        api.list(pb::ListContactsRequest {
            partner_id: unknown,
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, PARTNER);
    let db = app.db().await;
    assert_eq!(count_contacts(&db).await, 0);
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM partner.idempotency_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(claims, 0, "a failed create leaves no idempotency claim");
}

#[tokio::test]
async fn an_unknown_contact_is_not_found() {
    let app = TestApp::spawn().await;
    let api = Contacts::of_admin(&app);
    let unknown = Uuid::now_v7().to_string();
    assert_not_found(&api.get(&unknown).await.unwrap_err(), CONTACT);
    assert_not_found(&api.delete(&unknown, "").await.unwrap_err(), CONTACT);
    assert_not_found(&api.undelete(&unknown, "").await.unwrap_err(), CONTACT);
    let status = expect_code(
        api.update(
            pb::Contact {
                id: unknown,
                name: "Nobody".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    assert_not_found(&status, CONTACT);
    let status = expect_code(api.get("contact-1").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id"]);
}

// Sealed personal data ----------------------------------------------------------------------------

#[tokio::test]
async fn email_and_phone_are_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    let db = app.db().await;
    let id = Uuid::parse_str(&created.id).unwrap();
    let stored: String = sqlx::query_scalar("SELECT c::text FROM partner.contacts c WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_sealed(&stored, "ada.lovelace@example.com");
    assert_sealed(&stored, "ada.lovelace");
    assert_sealed(&stored, "+4930123456");
    assert_sealed(&stored, "4930123456");
    let (email_key, phone_key): (String, String) = sqlx::query_as(
        "SELECT partner.sealed_key_id(email_ciphertext), partner.sealed_key_id(phone_ciphertext) \
         FROM partner.contacts WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((email_key.as_str(), phone_key.as_str()), ("k1", "k1"));

    // The same values in another row seal differently (a fresh nonce, bound to the row).
    let twin = api.create(ada(&partner_id)).await.unwrap();
    let (first, second) = (row(&db, &created.id).await, row(&db, &twin.id).await);
    assert_ne!(first.email_ciphertext, second.email_ciphertext);
    assert_ne!(first.phone_ciphertext, second.phone_ciphertext);

    // New values are sealed as well.
    api.update(
        pb::Contact {
            id: created.id.clone(),
            email: "countess@lovelace.example".to_owned(),
            phone: "+441234567890".to_owned(),
            ..Default::default()
        },
        &["email", "phone"],
    )
    .await
    .unwrap();
    let stored: String = sqlx::query_scalar("SELECT c::text FROM partner.contacts c WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_sealed(&stored, "countess@lovelace.example");
    assert_sealed(&stored, "+441234567890");
    assert_eq!(
        api.get(&created.id).await.unwrap().email,
        "countess@lovelace.example"
    );
}

#[tokio::test]
async fn an_idempotent_create_keeps_no_plaintext_email_or_phone_in_its_claim() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    Contacts::of_admin(&app)
        .create_with_request_id(&Uuid::now_v7().to_string(), ada(&partner_id))
        .await
        .unwrap();
    let claims: Vec<String> = sqlx::query_scalar(
        "SELECT k::text FROM partner.idempotency_keys k WHERE method = 'CreateContact'",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(claims.len(), 1);
    assert_sealed(&claims[0], "ada.lovelace@example.com");
    assert_sealed(&claims[0], "+4930123456");
}

#[tokio::test]
async fn a_sealed_email_copied_into_another_row_does_not_open() {
    // The ciphertext is bound to its tenant, column and row: whoever can write the table
    // cannot move a value to where it would be shown under another name.
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let ada = api.create(ada(&partner_id)).await.unwrap();
    let bob = api.create(named(&partner_id, "Bob")).await.unwrap();
    let db = app.db().await;
    sqlx::query(
        "UPDATE partner.contacts SET email_ciphertext = \
             (SELECT email_ciphertext FROM partner.contacts WHERE id = $1) WHERE id = $2",
    )
    .bind(Uuid::parse_str(&ada.id).unwrap())
    .bind(Uuid::parse_str(&bob.id).unwrap())
    .execute(&db)
    .await
    .unwrap();
    let status = expect_code(api.get(&bob.id).await, Code::Internal);
    assert_not_echoed(&status, "ada.lovelace");
    assert_not_echoed(&status, "bob@example.com");
    assert_eq!(api.get(&ada.id).await.unwrap(), ada);
}

#[tokio::test]
async fn error_answers_never_repeat_an_email_or_phone() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);

    let bad_email = "ada.secret@nowhere";
    let bad_phone = "0301234567";
    let status = expect_code(
        api.create(pb::Contact {
            email: bad_email.to_owned(),
            phone: bad_phone.to_owned(),
            ..ada(&partner_id)
        })
        .await,
        Code::InvalidArgument,
    );
    assert_not_echoed(&status, "ada.secret");
    assert_not_echoed(&status, bad_phone);

    let created = api.create(ada(&partner_id)).await.unwrap();
    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                email: bad_email.to_owned(),
                phone: bad_phone.to_owned(),
                ..Default::default()
            },
            &["email", "phone"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_not_echoed(&status, "ada.secret");
    assert_not_echoed(&status, bad_phone);

    // Valid values in calls that fail for other reasons.
    let status = expect_code(
        api.update(
            pb::Contact {
                id: created.id.clone(),
                etag: "\"99\"".to_owned(),
                email: "grace.hopper@example.com".to_owned(),
                phone: "+12025550123".to_owned(),
                ..Default::default()
            },
            &["email", "phone"],
        )
        .await,
        Code::Aborted,
    );
    assert_not_echoed(&status, "grace.hopper");
    assert_not_echoed(&status, "2025550123");

    let status = expect_code(
        api.create(pb::Contact {
            email: "grace.hopper@example.com".to_owned(),
            phone: "+12025550123".to_owned(),
            ..ada(&Uuid::now_v7().to_string())
        })
        .await,
        Code::NotFound,
    );
    assert_not_echoed(&status, "grace.hopper");
    assert_not_echoed(&status, "2025550123");

    let request_id = Uuid::now_v7().to_string();
    api.create_with_request_id(&request_id, ada(&partner_id))
        .await
        .unwrap();
    let status = expect_code(
        api.create_with_request_id(
            &request_id,
            pb::Contact {
                name: "Grace Hopper".to_owned(),
                email: "grace.hopper@example.com".to_owned(),
                phone: "+12025550123".to_owned(),
                ..ada(&partner_id)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_not_echoed(&status, "grace.hopper");
    assert_not_echoed(&status, "2025550123");
    assert_not_echoed(&status, "ada.lovelace");
}

// One primary contact -------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_primary_contact_demotes_the_previous_one() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let other_partner = partner(&app, "Globex").await;
    let api = Contacts::of_admin(&app);
    let first = api
        .create(pb::Contact {
            primary: true,
            ..named(&partner_id, "Ada")
        })
        .await
        .unwrap();
    let elsewhere = api
        .create(pb::Contact {
            primary: true,
            ..named(&other_partner, "Hank")
        })
        .await
        .unwrap();
    assert!(first.primary);

    let second = api
        .create(pb::Contact {
            primary: true,
            ..named(&partner_id, "Bob")
        })
        .await
        .unwrap();
    assert!(second.primary);
    let demoted = api.get(&first.id).await.unwrap();
    assert!(!demoted.primary);
    assert_ne!(demoted.etag, first.etag, "demotion is a change");
    assert!(
        api.get(&elsewhere.id).await.unwrap().primary,
        "other partners keep theirs"
    );
    let db = app.db().await;
    assert_eq!(live_primaries(&db, &partner_id).await, [second.id.as_str()]);
    assert_eq!(
        live_primaries(&db, &other_partner).await,
        [elsewhere.id.as_str()]
    );

    // Promoting through an update demotes too; the primary lists first.
    let promoted = api
        .update(
            pb::Contact {
                id: first.id.clone(),
                etag: demoted.etag.clone(),
                primary: true,
                ..Default::default()
            },
            &["primary"],
        )
        .await
        .unwrap();
    assert!(promoted.primary);
    assert!(!api.get(&second.id).await.unwrap().primary);
    assert_eq!(live_primaries(&db, &partner_id).await, [first.id.as_str()]);
    assert_eq!(
        api.list_ids(&partner_id, false).await,
        [first.id.clone(), second.id.clone()]
    );
}

#[tokio::test]
async fn concurrent_promotions_leave_exactly_one_primary() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let results = futures::future::join_all((0..8).map(|i| {
        api.create(pb::Contact {
            primary: true,
            ..named(&partner_id, &format!("Racer {i}"))
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
    assert_eq!(count_contacts(&db).await, created);
    assert_eq!(live_primaries(&db, &partner_id).await.len(), 1);
}

#[tokio::test]
async fn a_restored_former_primary_does_not_take_the_role_back() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let first = api
        .create(pb::Contact {
            primary: true,
            ..named(&partner_id, "Ada")
        })
        .await
        .unwrap();
    api.delete(&first.id, "").await.unwrap();
    let second = api
        .create(pb::Contact {
            primary: true,
            ..named(&partner_id, "Bob")
        })
        .await
        .unwrap();
    let restored = api.undelete(&first.id, "").await.unwrap();
    assert!(!restored.primary);
    assert!(api.get(&second.id).await.unwrap().primary);
    assert_eq!(
        live_primaries(&app.db().await, &partner_id).await,
        [second.id.as_str()]
    );
}

#[tokio::test]
async fn the_database_refuses_a_second_live_primary_contact() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let primary = api
        .create(pb::Contact {
            primary: true,
            ..named(&partner_id, "Ada")
        })
        .await
        .unwrap();
    let other = api.create(named(&partner_id, "Bob")).await.unwrap();
    let db = app.db().await;

    let err = sqlx::query("UPDATE partner.contacts SET is_primary = true WHERE id = $1")
        .bind(Uuid::parse_str(&other.id).unwrap())
        .execute(&db)
        .await
        .unwrap_err();
    let err = err.as_database_error().expect("a database error");
    assert_eq!(err.code().as_deref(), Some("23505"));
    assert_eq!(err.constraint(), Some("contacts_one_primary"));
    assert_eq!(
        live_primaries(&db, &partner_id).await,
        [primary.id.as_str()]
    );

    // Only live contacts count: a deleted primary leaves room for another.
    sqlx::query("UPDATE partner.contacts SET deleted_at = now() WHERE id = $1")
        .bind(Uuid::parse_str(&primary.id).unwrap())
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE partner.contacts SET is_primary = true WHERE id = $1")
        .bind(Uuid::parse_str(&other.id).unwrap())
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(live_primaries(&db, &partner_id).await, [other.id.as_str()]);
}

// Paging --------------------------------------------------------------------------------------------

#[tokio::test]
async fn contacts_page_through_without_duplicates_or_gaps() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let other_partner = partner(&app, "Globex").await;
    let api = Contacts::of_admin(&app);
    // Names that tie case-insensitively, so the id breaks ties; one primary, listed first.
    let mut created = Vec::new();
    for (name, primary) in [
        ("carol", false),
        ("Bob", false),
        ("alice", false),
        ("Zed", true),
        ("bob", false),
        ("Alice", false),
        ("dave", false),
    ] {
        created.push(
            api.create(pb::Contact {
                primary,
                ..named(&partner_id, name)
            })
            .await
            .unwrap(),
        );
    }
    api.create(named(&other_partner, "Eve")).await.unwrap();
    let by_name = |name: &str| created.iter().find(|c| c.name == name).unwrap().id.clone();
    let expected = [
        by_name("Zed"),
        by_name("alice"),
        by_name("Alice"),
        by_name("Bob"),
        by_name("bob"),
        by_name("carol"),
        by_name("dave"),
    ];

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = api
            .list(pb::ListContactsRequest {
                partner_id: partner_id.clone(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages.push(
            page.contacts
                .iter()
                .map(|c| c.id.clone())
                .collect::<Vec<_>>(),
        );
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let all: Vec<String> = pages.concat();
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 7, "duplicates");
    assert_eq!(all, expected);

    // Exactly a page full: no empty trailing page.
    let full = api
        .list(pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            page_size: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(full.contacts.len(), 7);
    assert!(full.next_page_token.is_empty());
}

#[tokio::test]
async fn a_page_token_continues_only_the_listing_it_came_from() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let other_partner = partner(&app, "Globex").await;
    let api = Contacts::of_admin(&app);
    for name in ["Ada", "Bob", "Cy"] {
        api.create(named(&partner_id, name)).await.unwrap();
    }
    let first = api
        .list(pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());

    for request in [
        pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            show_deleted: true,
        },
        pb::ListContactsRequest {
            partner_id: other_partner.clone(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            show_deleted: false,
        },
        pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            page_size: 1,
            page_token: format!("{}x", first.next_page_token),
            show_deleted: false,
        },
    ] {
        let status = expect_code(api.list(request).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
    let status = expect_code(
        api.list(pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            page_size: -1,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_size"]);
}

// Who sees a contact ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_contact_cannot_be_added_to_a_deleted_partner() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    delete_partner(&app, &partner_id).await;
    let status = expect_code(
        Contacts::of_admin(&app).create(ada(&partner_id)).await,
        Code::NotFound,
    );
    assert_not_found(&status, PARTNER);
    assert_eq!(count_contacts(&app.db().await).await, 0);
}

#[tokio::test]
async fn a_contact_of_a_deleted_partner_is_not_found() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    delete_partner(&app, &partner_id).await;
    let status = expect_code(api.get(&created.id).await, Code::NotFound);
    assert_not_found(&status, CONTACT);
}

#[tokio::test]
async fn a_contact_of_a_deleted_partner_cannot_be_changed() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let api = Contacts::of_admin(&app);
    let created = api.create(ada(&partner_id)).await.unwrap();
    delete_partner(&app, &partner_id).await;
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    let update = api
        .update(
            pb::Contact {
                id: created.id.clone(),
                name: "Changed While Hidden".to_owned(),
                primary: true,
                ..Default::default()
            },
            &["name", "primary"],
        )
        .await;
    assert_not_found(&expect_code(update, Code::NotFound), CONTACT);
    let delete = api.delete(&created.id, "").await;
    assert_not_found(&expect_code(delete, Code::NotFound), CONTACT);
    assert_eq!(row(&db, &created.id).await, before);
}

#[tokio::test]
async fn a_contact_in_another_tenant_is_not_found_and_cannot_be_touched() {
    let app = TestApp::spawn().await;
    let partner_id = partner(&app, "Acme").await;
    let mine = Contacts::of_admin(&app);
    let created = mine.create(ada(&partner_id)).await.unwrap();
    let (_, stranger_token) = app.identity.other_tenant("Initech").await.unwrap();
    let stranger = Contacts::with_token(&app, &stranger_token);
    let db = app.db().await;
    let before = row(&db, &created.id).await;

    assert_not_found(&stranger.get(&created.id).await.unwrap_err(), CONTACT);
    let status = stranger
        .list(pb::ListContactsRequest {
            partner_id: partner_id.clone(),
            show_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_found(&status, PARTNER);
    let status = stranger
        .update(
            pb::Contact {
                id: created.id.clone(),
                name: "Hijacked".to_owned(),
                ..Default::default()
            },
            &["name"],
        )
        .await
        .unwrap_err();
    assert_not_found(&status, CONTACT);
    assert_not_found(
        &stranger.delete(&created.id, "").await.unwrap_err(),
        CONTACT,
    );
    assert_not_found(
        &stranger.create(ada(&partner_id)).await.unwrap_err(),
        PARTNER,
    );
    assert_eq!(row(&db, &created.id).await, before);
    assert_eq!(count_contacts(&db).await, 1);
}

#[tokio::test]
async fn a_customer_user_sees_and_manages_only_its_own_partners_contacts() {
    let app = TestApp::spawn().await;
    let own = partner(&app, "Acme").await;
    let other = partner(&app, "Globex").await;
    let admin = Contacts::of_admin(&app);
    let theirs = admin.create(named(&other, "Hank")).await.unwrap();
    let token = app
        .token(
            "buyer@acme.test",
            &[idpb::Role::Customer],
            Some(Uuid::parse_str(&own).unwrap()),
        )
        .await;
    let customer = Contacts::with_token(&app, &token);

    let created = customer.create(ada(&own)).await.unwrap();
    assert_eq!(customer.get(&created.id).await.unwrap(), created);
    assert_not_found(&customer.get(&theirs.id).await.unwrap_err(), CONTACT);
    assert_not_found(&customer.create(ada(&other)).await.unwrap_err(), PARTNER);
    assert_not_found(&customer.delete(&theirs.id, "").await.unwrap_err(), CONTACT);
    let db = app.db().await;
    assert!(!row(&db, &theirs.id).await.deleted);
    assert_eq!(count_contacts(&db).await, 2);
}

#[tokio::test]
async fn a_replayed_request_id_answers_only_a_caller_who_may_see_the_contact() {
    let app = TestApp::spawn().await;
    let acme_id = partner(&app, "Acme").await;
    let globex_id = partner(&app, "Globex").await;
    let request_id = Uuid::now_v7().to_string();
    Contacts::of_admin(&app)
        .create_with_request_id(&request_id, ada(&acme_id))
        .await
        .unwrap();
    let token = app
        .token(
            "buyer@globex.test",
            &[idpb::Role::Customer],
            Some(Uuid::parse_str(&globex_id).unwrap()),
        )
        .await;
    // E-mail and phone are not needed to replay: they are left out of the fingerprint.
    let replay = Contacts::with_token(&app, &token)
        .create_with_request_id(
            &request_id,
            pb::Contact {
                email: "guess@example.com".to_owned(),
                phone: String::new(),
                ..ada(&acme_id)
            },
        )
        .await;
    let status = expect_code(replay, Code::NotFound);
    assert_not_echoed(&status, "ada.lovelace");
}
