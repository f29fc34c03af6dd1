//! Where a shipment is in its life, and the only changes allowed between those states.
//!
//! ```text
//! DRAFT --plan--> PLANNED --dispatch--> DISPATCHED --depart--> IN_TRANSIT --deliver--> DELIVERED
//!   |               |                       |                    |    ^
//!   | cancel        | cancel                |     report an      |    |
//!   v               |                       |     exception      |    | resume
//! CANCELLED <-------+                       +----> EXCEPTION <---+    |
//!     ^                                             |    |            |
//!     +---------------- cancel ---------------------+    +------------+
//! ```
//!
//! DELIVERED and CANCELLED are final. Any other change is an [`IllegalTransition`], answered as
//! FAILED_PRECONDITION naming the current status.

use std::fmt;

use logistics_platform::{Error, stored_names};

stored_names!(
    /// Where a shipment is in its life.
    Status {
        /// Being put together: items, stops and fields may change; it may be deleted.
        Draft => "draft",
        /// Stock is reserved and a truck and driver are booked.
        Planned => "planned",
        /// Loaded and handed to the driver; the reservation is consumed.
        Dispatched => "dispatched",
        /// On the road: the first departure was recorded.
        InTransit => "in_transit",
        /// Delivered with a proof of delivery. Final.
        Delivered => "delivered",
        /// Cancelled; its reservation and booking were given back. Final.
        Cancelled => "cancelled",
        /// Something went wrong on the way; resumes or is cancelled.
        Exception => "exception",
    }
);

/// A change of status a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// DRAFT → PLANNED.
    Plan,
    /// PLANNED → DISPATCHED.
    Dispatch,
    /// DISPATCHED → IN_TRANSIT, when tracking records the first departure.
    Depart,
    /// IN_TRANSIT → DELIVERED.
    Deliver,
    /// DRAFT, PLANNED or EXCEPTION → CANCELLED.
    Cancel,
    /// DISPATCHED or IN_TRANSIT → EXCEPTION.
    ReportException,
    /// EXCEPTION → IN_TRANSIT.
    Resume,
}

impl Transition {
    /// Every transition, in declaration order.
    pub const ALL: &'static [Transition] = &[
        Transition::Plan,
        Transition::Dispatch,
        Transition::Depart,
        Transition::Deliver,
        Transition::Cancel,
        Transition::ReportException,
        Transition::Resume,
    ];

    /// The verb a caller used, as it reads in an error (`cannot plan a shipment …`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Plan => "plan",
            Transition::Dispatch => "dispatch",
            Transition::Depart => "depart",
            Transition::Deliver => "deliver",
            Transition::Cancel => "cancel",
            Transition::ReportException => "report an exception",
            Transition::Resume => "resume",
        }
    }
}

impl Status {
    /// The status after `transition`, or why it is not allowed from this one.
    pub fn apply(self, transition: Transition) -> Result<Status, IllegalTransition> {
        match (self, transition) {
            (Status::Draft, Transition::Plan) => Ok(Status::Planned),
            (Status::Planned, Transition::Dispatch) => Ok(Status::Dispatched),
            (Status::Dispatched, Transition::Depart) => Ok(Status::InTransit),
            (Status::InTransit, Transition::Deliver) => Ok(Status::Delivered),
            (Status::Draft | Status::Planned | Status::Exception, Transition::Cancel) => {
                Ok(Status::Cancelled)
            }
            (Status::Dispatched | Status::InTransit, Transition::ReportException) => {
                Ok(Status::Exception)
            }
            (Status::Exception, Transition::Resume) => Ok(Status::InTransit),
            (from, transition) => Err(IllegalTransition { from, transition }),
        }
    }

    /// Whether nothing can happen to the shipment any more (DELIVERED, CANCELLED).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Delivered | Status::Cancelled)
    }

    /// Whether items, stops and fields may change and the shipment may be deleted: DRAFT only.
    pub fn editable(self) -> bool {
        self == Status::Draft
    }

    /// Whether stock is reserved for the shipment and not yet consumed: PLANNED only.
    pub fn holds_reservation(self) -> bool {
        self == Status::Planned
    }

    /// Whether a truck and driver are booked for the shipment: from PLANNED until it is
    /// delivered or cancelled.
    pub fn holds_assignment(self) -> bool {
        matches!(
            self,
            Status::Planned | Status::Dispatched | Status::InTransit | Status::Exception
        )
    }

    /// The status as the wire enum names it without its prefix (`IN_TRANSIT`).
    fn wire_name(self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

/// A transition the current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition {
    /// The shipment's status when the transition was asked for.
    pub from: Status,
    /// The transition asked for.
    pub transition: Transition,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = match self.transition {
            Transition::ReportException => "on a shipment",
            _ => "a shipment",
        };
        write!(
            f,
            "cannot {} {object} that is {}",
            self.transition.as_str(),
            self.from.wire_name()
        )
    }
}

impl std::error::Error for IllegalTransition {}

impl From<IllegalTransition> for Error {
    fn from(illegal: IllegalTransition) -> Self {
        Error::precondition("ILLEGAL_TRANSITION", "status", illegal.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use Status::*;
    use Transition::*;

    /// Every allowed `(from, transition, to)`; everything else is illegal.
    const LEGAL: [(Status, Transition, Status); 10] = [
        (Draft, Plan, Planned),
        (Planned, Dispatch, Dispatched),
        (Dispatched, Depart, InTransit),
        (InTransit, Deliver, Delivered),
        (Draft, Cancel, Cancelled),
        (Planned, Cancel, Cancelled),
        (Exception, Cancel, Cancelled),
        (Dispatched, ReportException, Exception),
        (InTransit, ReportException, Exception),
        (Exception, Resume, InTransit),
    ];

    #[test]
    fn a_shipment_goes_from_draft_through_planned_dispatched_and_in_transit_to_delivered() {
        let mut status = Draft;
        for (transition, expected) in [
            (Plan, Planned),
            (Dispatch, Dispatched),
            (Depart, InTransit),
            (Deliver, Delivered),
        ] {
            status = status.apply(transition).unwrap();
            assert_eq!(status, expected);
        }
        assert!(status.is_terminal());
    }

    #[test]
    fn a_shipment_can_be_cancelled_from_draft_planned_and_exception_and_nowhere_else() {
        for from in Status::ALL.iter().copied() {
            let result = from.apply(Cancel);
            if matches!(from, Draft | Planned | Exception) {
                assert_eq!(result, Ok(Cancelled), "from {from:?}");
            } else {
                assert_eq!(
                    result,
                    Err(IllegalTransition {
                        from,
                        transition: Cancel
                    })
                );
            }
        }
    }

    #[test]
    fn an_exception_is_reported_only_while_dispatched_or_in_transit_and_resumes_in_transit() {
        for from in Status::ALL.iter().copied() {
            let result = from.apply(ReportException);
            if matches!(from, Dispatched | InTransit) {
                assert_eq!(result, Ok(Exception), "from {from:?}");
            } else {
                assert!(result.is_err(), "from {from:?}");
            }
        }
        assert_eq!(Exception.apply(Resume), Ok(InTransit));
        for from in Status::ALL.iter().copied().filter(|s| *s != Exception) {
            assert!(from.apply(Resume).is_err(), "from {from:?}");
        }
    }

    #[test]
    fn exactly_the_legal_transitions_succeed_and_every_other_names_its_from_status() {
        assert_eq!(Transition::ALL.len(), 7);
        let mut legal_seen = 0;
        for from in Status::ALL.iter().copied() {
            for transition in Transition::ALL.iter().copied() {
                let legal = LEGAL
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == transition);
                match (legal, from.apply(transition)) {
                    (Some((_, _, to)), result) => {
                        assert_eq!(result, Ok(*to), "{from:?} + {transition:?}");
                        legal_seen += 1;
                    }
                    (None, Err(illegal)) => {
                        assert_eq!(illegal.from, from);
                        assert_eq!(illegal.transition, transition);
                    }
                    (None, Ok(to)) => {
                        panic!("{from:?} + {transition:?} gave {to:?} but is not legal")
                    }
                }
            }
        }
        assert_eq!(legal_seen, LEGAL.len());
    }

    #[test]
    fn terminal_statuses_accept_no_transition() {
        let terminal: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Delivered, Cancelled]);
        for from in terminal {
            for transition in Transition::ALL.iter().copied() {
                assert!(from.apply(transition).is_err(), "{from:?} + {transition:?}");
            }
        }
    }

    #[test]
    fn only_a_draft_is_editable_only_planned_holds_stock_and_booked_states_hold_an_assignment() {
        for status in Status::ALL.iter().copied() {
            assert_eq!(status.editable(), status == Draft, "{status:?}");
            assert_eq!(status.holds_reservation(), status == Planned, "{status:?}");
            assert_eq!(
                status.holds_assignment(),
                matches!(status, Planned | Dispatched | InTransit | Exception),
                "{status:?}"
            );
        }
    }

    #[test]
    fn the_error_text_names_the_current_status_in_upper_case() {
        let err = Delivered.apply(Plan).unwrap_err();
        assert_eq!(err.to_string(), "cannot plan a shipment that is DELIVERED");
        let err = Draft.apply(ReportException).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot report an exception on a shipment that is DRAFT"
        );
        let err = InTransit.apply(Cancel).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot cancel a shipment that is IN_TRANSIT"
        );
    }

    #[test]
    fn an_illegal_transition_is_a_failed_precondition_on_the_status() {
        let illegal = Cancelled.apply(Resume).unwrap_err();
        match Error::from(illegal) {
            Error::Precondition(violations) => {
                assert_eq!(violations.len(), 1);
                assert_eq!(violations[0].kind, "ILLEGAL_TRANSITION");
                assert_eq!(violations[0].subject, "status");
                assert_eq!(
                    violations[0].description,
                    "cannot resume a shipment that is CANCELLED"
                );
            }
            other => panic!("expected a precondition failure, got {other:?}"),
        }
    }

    #[test]
    fn stored_names_round_trip_and_are_what_the_check_lists() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(*status));
        }
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "draft",
                "planned",
                "dispatched",
                "in_transit",
                "delivered",
                "cancelled",
                "exception"
            ]
        );
        assert_eq!(Status::parse("DRAFT"), None);
        assert_eq!(Status::parse(""), None);
    }
}
