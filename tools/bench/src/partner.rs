//! CreatePartner over gRPC and in-process (the partner service's own handler on a pool of the
//! same size, with the same keys: the database-only bound, sealing included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use logistics_platform::aip::PageTokens;
use logistics_platform::auth::Caller;
use logistics_proto::partner::v1 as pb;
use partner::api::PartnerApi;
use partner::sealing::Sealer;
use pb::partner_service_client::PartnerServiceClient;
use pb::partner_service_server::PartnerService as _;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::call::{authed, grpc, local};
use crate::inventory::Path;

/// Partner's keys and runtime-role URL, as the service runs with them.
#[derive(Debug, Clone, clap::Args)]
pub struct PartnerArgs {
    /// Partner's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub partner_url: String,
    /// Partner's runtime-role URL, for the in-process (database-only) path.
    #[arg(long, env = "BENCH_PARTNER_DATABASE_URL", hide_env_values = true)]
    pub partner_database_url: String,
    /// Partner's field-encryption keyring.
    #[arg(long, env = "PARTNER_FIELD_ENCRYPTION_KEYS", hide_env_values = true)]
    pub partner_field_encryption_keys: String,
    /// Partner's blind-index key.
    #[arg(long, env = "PARTNER_BLIND_INDEX_KEY", hide_env_values = true)]
    pub partner_blind_index_key: String,
    /// Partner's page-token key.
    #[arg(long, env = "PARTNER_PAGE_TOKEN_KEY", hide_env_values = true)]
    pub partner_page_token_key: String,
}

/// A client of the running partner service and its handlers in-process.
#[derive(Clone)]
pub struct Target {
    client: PartnerServiceClient<Channel>,
    token: String,
    api: Arc<PartnerApi>,
    caller: Arc<Caller>,
    next: Arc<AtomicU64>,
    run: Uuid,
}

impl Target {
    /// Connects to partner and builds its handlers over a pool of `pool_size`.
    pub async fn new(
        args: &PartnerArgs,
        pool_size: u32,
        token: String,
        caller: Arc<Caller>,
    ) -> anyhow::Result<Self> {
        let keys = logistics_platform::config::parse_keyring(&args.partner_field_encryption_keys)
            .map_err(anyhow::Error::msg)?;
        let blind = logistics_platform::config::parse_key32(&args.partner_blind_index_key)
            .map_err(anyhow::Error::msg)?;
        let pages = logistics_platform::config::parse_key32(&args.partner_page_token_key)
            .map_err(anyhow::Error::msg)?;
        let state = partner::api::State {
            pool: logistics_platform::db::pool(&args.partner_database_url, pool_size, "bench")?,
            sealer: Sealer::new(keys, blind.0),
            page_tokens: PageTokens::new(pages.0),
        };
        Ok(Self {
            client: PartnerServiceClient::new(crate::call::channel(&args.partner_url).await?),
            token,
            api: Arc::new(PartnerApi::new(state)),
            caller,
            next: Arc::new(AtomicU64::new(0)),
            run: Uuid::now_v7(),
        })
    }

    /// CreatePartner of a new customer, numbered.
    pub async fn create_partner(&self, path: Path) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let request = pb::CreatePartnerRequest {
            request_id: Uuid::now_v7().to_string(),
            partner: Some(pb::Partner {
                kind: pb::PartnerKind::Organization as i32,
                legal_name: format!("Bench Run {} Partner {n} GmbH", self.run.simple()),
                display_name: format!("Bench Partner {n}"),
                country_code: "DE".to_owned(),
                default_currency_code: "EUR".to_owned(),
                ..Default::default()
            }),
            roles: vec![pb::PartnerRole::Customer as i32],
        };
        match path {
            Path::Grpc => grpc(
                self.client
                    .clone()
                    .create_partner(authed(&self.token, request))
                    .await,
            ),
            Path::Database => grpc(self.api.create_partner(local(&self.caller, request)).await),
        }
    }
}
