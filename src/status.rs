//! What an instance reports about itself ([`TakeoverRef::status`]) and
//! where a failover's state came from.
//!
//! [`TakeoverRef::status`]: crate::TakeoverRef::status

pub use crate::behaviour::CheckpointInfo;
pub use crate::message::InstanceStatus;
pub use crate::message::LastMove;
pub use crate::message::Phase;
