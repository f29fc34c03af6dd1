//! Time windows: the platform's half-open `[start, end)` spans, shared with the shipment service.

pub use logistics_platform::window::Window;
