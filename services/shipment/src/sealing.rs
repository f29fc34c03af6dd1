//! Shipment's sealed columns: the recipient's name and the signature or photo of a proof of
//! delivery (personal data), and the access token a saga acts with until it ends.

use logistics_platform::sealing::SealedColumn;
pub use logistics_platform::sealing::Sealer;

/// A sealed column: what the associated data names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `shipment.proofs_of_delivery.recipient_name`.
    RecipientName,
    /// `shipment.proofs_of_delivery.content`.
    ProofContent,
    /// `shipment.sagas.credentials`.
    SagaCredentials,
}

impl SealedColumn for Column {
    fn name(self) -> &'static str {
        match self {
            Column::RecipientName => "shipment.proofs_of_delivery.recipient_name",
            Column::ProofContent => "shipment.proofs_of_delivery.content",
            Column::SagaCredentials => "shipment.sagas.credentials",
        }
    }
}
