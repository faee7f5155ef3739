//! Driving an instance from outside: `go`, `takeover`, `status`.

use std::time::Duration;

use super::TakeoverRef;
use crate::{
    GoRequest, HandoverReport, InstanceStatus, TakeoverActor, TakeoverErr, TakeoverMessage,
};

/// Asks the standby `instance` to take the name over from its current holder
/// (steal, then pull the state), like `application:takeover/2`. Returns when
/// the instance serves as holder, or with why it does not.
pub async fn takeover<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    timeout: Duration,
) -> Result<HandoverReport, TakeoverErr> {
    go(instance, GoRequest::Takeover, timeout).await
}

/// Sends a `go` request to a standby and waits for its outcome.
pub async fn go<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    request: GoRequest,
    timeout: Duration,
) -> Result<HandoverReport, TakeoverErr> {
    let outcome = instance
        .call(
            |reply| TakeoverMessage::Go {
                request,
                reply: Some(reply),
            },
            Some(timeout),
        )
        .await;
    match outcome {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(ractor::rpc::CallResult::Timeout) => Err(TakeoverErr::Timeout { after: timeout }),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(TakeoverErr::InstanceGone),
    }
}

/// Asks an instance what it is doing.
pub async fn status<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    timeout: Duration,
) -> Option<InstanceStatus> {
    match instance.call(TakeoverMessage::Status, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(s)) => Some(s),
        _ => None,
    }
}
